# KD-DETR on the toy set with DAB-DETR teacher and student (distillation points are 4-d
# anchors: random N(0, 1) anchors and the teacher's learned anchors). Weights 1 / 5 / 2 for both
# groups as in TPRD's DAB-DETR config. TPRD variant: kd-detr-tprd_dab-detr_tiny-r18_1xb2-12e_toy.py.
# Student config (tools/test.py with the tools/pth_transfer.py output):
#   configs/toy/dab-detr_tiny-r18-student_1xb2-12e_toy.py
_base_ = ['../dab-detr_tiny-r18_1xb2-12e_toy.py', '../../_base_/distill/kd_detr.py']

teacher_ckpt = 'work_dirs/dab-detr_tiny-r18_1xb2-12e_toy/epoch_12.pth'

student = dict(_base_.model, num_queries=20, _scope_='mmdet')
teacher = dict(_base_.model, _scope_='mmdet')

__losses = _base_.kd_detr.distiller.distill_losses
model = dict(
    _base_.kd_detr,
    architecture=student,
    teacher=teacher,
    teacher_ckpt=teacher_ckpt,
    num_general_queries=30,
    distiller=dict(
        _base_.kd_detr.distiller,
        distill_losses=dict(
            loss_general=dict(__losses.loss_general, loss_cls_weight=1.0),
            loss_specific=dict(__losses.loss_specific, loss_cls_weight=1.0))))

find_unused_parameters = True
