# Follows the TPRD release (xingyitong1/TPRD) for KD-DETR (weights, schedule, layer i <- layer i).
# KD-DETR + TPRD on Pascal VOC: the COCO TPRD config beside this file (the baseline with the TPRD
# switch on) with the VOC data of configs/_base_/datasets/voc0712_detr.py and the VOC teacher;
# train and test it as the VOC baseline (kd-detr_..._voc0712.py).
_base_ = ['./kd-detr-tprd_deformable-detr_r50_deformable-detr_r18_8xb2-50e_coco.py',
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
