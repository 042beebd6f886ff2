# Follows the TPRD release (xingyitong1/TPRD) for DETRDistill (no teacher box clamping).
# DETRDistill baseline (TPRD release's setting) on Pascal VOC: the COCO config beside this file
# (same distillation settings, no CL loss) with the VOC data of
# configs/_base_/datasets/voc0712_detr.py: Deformable DETR R50 (VOC-trained teacher, see
# configs/detectors/deformable-detr_r50_8xb2-50e_voc0712.py) -> Deformable DETR R18, 20 classes,
# lr 1e-4, 50 epochs with the lr drop at 40 (TPRD's 51,750 iterations / drop at 42,000 at batch
# 16). TPRD version: detr-distill-tprd_..._voc0712.py.
#
#   bash tools/dist_train.sh configs/detr_distill/<this file> 8 \
#       --cfg-options model.teacher_ckpt=work_dirs/deformable-detr_r50_8xb2-50e_voc0712/epoch_50.pth
#   python tools/pth_transfer.py --ckpt_path work_dirs/<this>/epoch_50.pth --output_path r18.pth
#   bash tools/dist_test.sh configs/detectors/deformable-detr_r18_8xb2-50e_voc0712.py r18.pth 8
_base_ = ['./detr-distill-nocl_deformable-detr_r50_deformable-detr_r18_8xb2-50e_coco.py',
          '../_base_/datasets/voc0712_detr.py']

teacher_ckpt = _base_.voc_teacher_ckpt
student = teacher = dict(bbox_head=dict(num_classes=_base_.voc_num_classes))  # merged into both
model = dict(architecture=student, teacher=teacher, teacher_ckpt=teacher_ckpt)
data_root = _base_.voc_data_root  # --cfg-options data_root=PATH moves all the data
train_dataloader = dict(dataset=dict(_base_.voc_trainval, datasets=[
    dict(d, pipeline=_base_.train_pipeline) for d in _base_.voc_trainval.datasets]))
val_dataloader = dict(dataset=dict(_base_.voc_test, pipeline=_base_.test_pipeline))
test_dataloader = val_dataloader
val_evaluator = test_evaluator = _base_.voc_evaluator
optim_wrapper = _base_.voc_optim_wrapper
train_cfg = _base_.voc_train_cfg
param_scheduler = _base_.voc_param_scheduler
auto_scale_lr = _base_.voc_auto_scale_lr
