# QSKD on the toy set: tiny Deformable DETR teacher (30 queries) and student (20 queries); group
# query selection (positives through the shared GT, hard negatives matched by Hungarian) with
# predictions 1 / 5 / 2 averaged per pair, attention-guided feature loss 100.
# TPRD variant: qskd-tprd_deformable-detr_tiny-r18_1xb2-12e_toy.py.
#
#   PORT=29641 bash tools/dist_train.sh \
#       configs/toy/qskd/qskd_deformable-detr_tiny-r18_1xb2-12e_toy.py 2
# Student config (tools/test.py with the tools/pth_transfer.py output):
#   configs/toy/deformable-detr_tiny-r18-student_1xb2-12e_toy.py
# Teacher, student (20 queries) and teacher_ckpt: those of the KD-DETR toy config.
_base_ = ['../kd_detr/kd-detr_deformable-detr_tiny-r18_1xb2-12e_toy.py',
          '../../_base_/distill/qskd.py']

model = dict(
    _base_.qskd,
    architecture=_base_.student,
    teacher=_base_.teacher,
    teacher_ckpt=_base_.teacher_ckpt)
