# Follows the TPRD release (xingyitong1/TPRD) for KD-DETR (weights, schedule, layer i <- layer i).
# KD-DETR baseline: DINO-4scale R50 (teacher: mmdet's released checkpoint, 49.0 AP) -> DINO-4scale
# R18, 12 epochs, lr 1e-4, 900 queries, 100 DN queries, 8 GPUs x 2 images. Distillation points are
# (content query, reference box) pairs: 300 random ones and the teacher's own (content embedding
# + its top-900 encoder proposals). The teacher runs in eval(): no denoising queries; the
# student's denoising queries are excluded from distillation (they keep their own DN loss).
# Weights (TPRD release): general 4 / 5 / 2, specific 2 / 20 / 8.
#
#   bash tools/dist_train.sh configs/kd_detr/<this file> 8
#   python tools/pth_transfer.py --ckpt_path work_dirs/<this>/epoch_12.pth --output_path r18.pth
#   bash tools/dist_test.sh configs/detectors/dino-4scale_r18_8xb2-12e_coco.py r18.pth 8
_base_ = ['../detectors/dino-4scale_r18_8xb2-12e_coco.py', '../_base_/distill/kd_detr.py']

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v3.0/dino/dino-4scale_r50_8xb2-12e_coco/dino-4scale_r50_8xb2-12e_coco_20221202_182705-55b2bba2.pth'  # noqa

student = dict(_base_.model, _scope_='mmdet')
teacher = dict(
    _base_.model,
    _scope_='mmdet',
    backbone=dict(_base_.model['backbone'], depth=50, init_cfg=None),
    neck=dict(_base_.model['neck'], in_channels=[512, 1024, 2048]))

__losses = _base_.kd_detr.distiller.distill_losses
model = dict(
    _base_.kd_detr,
    architecture=student,
    teacher=teacher,
    teacher_ckpt=teacher_ckpt,
    init_student_from_teacher=['level_embed'],
    distiller=dict(
        _base_.kd_detr.distiller,
        distill_losses=dict(
            loss_general=dict(__losses.loss_general, loss_cls_weight=4.0),
            loss_specific=dict(__losses.loss_specific, loss_bbox_weight=20.0,
                               loss_iou_weight=8.0))))

find_unused_parameters = True
