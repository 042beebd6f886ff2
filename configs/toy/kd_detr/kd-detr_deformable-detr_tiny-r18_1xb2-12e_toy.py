# KD-DETR on the toy set: a tiny Deformable DETR teacher (30 queries) distils into a tiny
# Deformable DETR student (20 queries) through 30 random "general" and the teacher's 30
# "specific" distillation points. CPU-sized; used by the tests. TPRD variant:
# kd-detr-tprd_deformable-detr_tiny-r18_1xb2-12e_toy.py (same file plus model.tprd=True).
#
#   python tools/train.py configs/toy/deformable-detr_tiny-r18_1xb2-12e_toy.py   # teacher
#   PORT=29641 bash tools/dist_train.sh \
#       configs/toy/kd_detr/kd-detr_deformable-detr_tiny-r18_1xb2-12e_toy.py 2
# Student config (tools/test.py with the tools/pth_transfer.py output):
#   configs/toy/deformable-detr_tiny-r18-student_1xb2-12e_toy.py
_base_ = ['../deformable-detr_tiny-r18_1xb2-12e_toy.py', '../../_base_/distill/kd_detr.py']

teacher_ckpt = 'work_dirs/deformable-detr_tiny-r18_1xb2-12e_toy/epoch_12.pth'

student = dict(_base_.model, num_queries=20, _scope_='mmdet')
teacher = dict(_base_.model, _scope_='mmdet')

model = dict(
    _base_.kd_detr,
    architecture=student,
    teacher=teacher,
    teacher_ckpt=teacher_ckpt,
    num_general_queries=30,
    init_student_from_teacher=['level_embed'])

find_unused_parameters = True
