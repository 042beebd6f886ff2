# KD-DETR on the toy set with DINO-4scale teacher and student. Distillation points are (content
# query, reference box) pairs: random N(0, 1) ones and the teacher's own (its content embedding
# with its top-k encoder proposals). The teacher runs in eval(): no denoising queries; the
# student's denoising queries are excluded from distillation (they keep the student's own DN
# loss). Weights as in TPRD's DINO config: general 4 / 5 / 2, specific 2 / 20 / 8.
# TPRD variant: kd-detr-tprd_dino-4scale_tiny-r18_1xb2-12e_toy.py.
# Student config (tools/test.py with the tools/pth_transfer.py output):
#   configs/toy/dino-4scale_tiny-r18-student_1xb2-12e_toy.py
_base_ = ['../dino-4scale_tiny-r18_1xb2-12e_toy.py', '../../_base_/distill/kd_detr.py']

teacher_ckpt = 'work_dirs/dino-4scale_tiny-r18_1xb2-12e_toy/epoch_12.pth'

student = dict(_base_.model, num_queries=20, _scope_='mmdet')
teacher = dict(_base_.model, _scope_='mmdet')

__losses = _base_.kd_detr.distiller.distill_losses
model = dict(
    _base_.kd_detr,
    architecture=student,
    teacher=teacher,
    teacher_ckpt=teacher_ckpt,
    num_general_queries=30,
    init_student_from_teacher=['level_embed'],
    distiller=dict(
        _base_.kd_detr.distiller,
        distill_losses=dict(
            loss_general=dict(__losses.loss_general, loss_cls_weight=4.0),
            loss_specific=dict(__losses.loss_specific, loss_bbox_weight=20.0,
                               loss_iou_weight=8.0))))

find_unused_parameters = True
