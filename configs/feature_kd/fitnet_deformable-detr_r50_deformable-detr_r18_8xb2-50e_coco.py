# Follows the TPRD release (xingyitong1/TPRD) for this feature baseline.
# FitNet feature baseline: Deformable DETR R50 (mmdet's released teacher) -> Deformable DETR R18,
# 50 epochs, 8 GPUs x 2 images; the four ChannelMapper outputs through a 1x1 hint regressor,
# mean squared error, weight 10 (TPRD's FitNet baseline). No TPRD variant (features only).
#
#   bash tools/dist_train.sh configs/feature_kd/<this file> 8
#   python tools/pth_transfer.py --ckpt_path work_dirs/<this>/epoch_50.pth --output_path r18.pth
#   bash tools/dist_test.sh configs/detectors/deformable-detr_r18_16xb2-50e_coco.py r18.pth 8
_base_ = ['../kd_detr/kd-detr_deformable-detr_r50_deformable-detr_r18_8xb2-50e_coco.py',
          '../_base_/distill/feature_kd.py']

model = dict(
    _base_.fitnet,
    architecture=_base_.student,
    teacher=_base_.teacher,
    teacher_ckpt=_base_.teacher_ckpt)
