# Follows the TPRD release (xingyitong1/TPRD) for KD-DETR (weights, schedule, layer i <- layer i).
# KD-DETR baseline: DAB-DETR R50 (teacher: mmdet's released checkpoint, 42.3 AP) -> DAB-DETR R18,
# 50 epochs, lr 1e-4, 8 GPUs x 2 images. Distillation points are anchors: 300 random N(0, 1)
# anchors and the teacher's learned anchors; weights 1 / 5 / 2 for both groups (TPRD release).
#
#   bash tools/dist_train.sh configs/kd_detr/<this file> 8
#   python tools/pth_transfer.py --ckpt_path work_dirs/<this>/epoch_50.pth --output_path r18.pth
#   bash tools/dist_test.sh configs/detectors/dab-detr_r18_8xb2-50e_coco.py r18.pth 8
_base_ = ['../detectors/dab-detr_r18_8xb2-50e_coco.py', '../_base_/distill/kd_detr.py']

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v3.0/dab_detr/dab-detr_r50_8xb2-50e_coco/dab-detr_r50_8xb2-50e_coco_20221122_120837-c1035c8c.pth'  # noqa

student = dict(_base_.model, _scope_='mmdet')
teacher = dict(
    _base_.model,
    _scope_='mmdet',
    backbone=dict(_base_.model['backbone'], depth=50, init_cfg=None),
    neck=dict(_base_.model['neck'], in_channels=[2048]))

__losses = _base_.kd_detr.distiller.distill_losses
model = dict(
    _base_.kd_detr,
    architecture=student,
    teacher=teacher,
    teacher_ckpt=teacher_ckpt,
    distiller=dict(
        _base_.kd_detr.distiller,
        distill_losses=dict(
            loss_general=dict(__losses.loss_general, loss_cls_weight=1.0),
            loss_specific=dict(__losses.loss_specific, loss_cls_weight=1.0))))

find_unused_parameters = True
