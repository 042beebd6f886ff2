# CrossKD on the toy set: a tiny Deformable DETR teacher (30 queries) reads the encoder memory
# of a tiny Deformable DETR student (20 queries) with its decoder and head; those cross
# predictions learn the teacher's own per layer (matching and BCE / L1 / GIoU 1 / 5 / 2).
# CPU-sized; used by the tests.
#
#   python tools/train.py configs/toy/deformable-detr_tiny-r18_1xb2-12e_toy.py   # teacher
#   PORT=29641 bash tools/dist_train.sh \
#       configs/toy/crosskd/crosskd_deformable-detr_tiny-r18_1xb2-12e_toy.py 2
# Student config (tools/test.py with the tools/pth_transfer.py output):
#   configs/toy/deformable-detr_tiny-r18-student_1xb2-12e_toy.py
# Teacher, student (20 queries) and teacher_ckpt: those of the KD-DETR toy config.
_base_ = ['../kd_detr/kd-detr_deformable-detr_tiny-r18_1xb2-12e_toy.py',
          '../../_base_/distill/crosskd.py']

model = dict(
    _base_.crosskd,
    architecture=_base_.student,
    teacher=_base_.teacher,
    teacher_ckpt=_base_.teacher_ckpt,
    init_student_from_teacher=['level_embed'])
