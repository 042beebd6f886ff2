# DETRDistill (LayerbyLayer_CL_teachergroup) on the toy set: a briefly trained tiny Deformable
# DETR teacher (configs/toy/deformable-detr_tiny-r18_1xb2-12e_toy.py) distils into a tiny
# Deformable DETR student with fewer queries (20 vs 30). CPU-sized; used by the tests.
#
#   python tools/train.py configs/toy/deformable-detr_tiny-r18_1xb2-12e_toy.py   # teacher
#   bash tools/dist_train.sh \
#       configs/toy/detr_distill/detr-distill_deformable-detr_tiny-r18_1xb2-12e_toy.py 2 \
#       --cfg-options model.teacher_ckpt=work_dirs/deformable-detr_tiny-r18_1xb2-12e_toy/epoch_12.pth
# Student config (tools/test.py with the tools/pth_transfer.py output):
#   configs/toy/deformable-detr_tiny-r18-student_1xb2-12e_toy.py
# Teacher, student (20 queries) and teacher_ckpt: those of the KD-DETR toy config.
_base_ = ['../kd_detr/kd-detr_deformable-detr_tiny-r18_1xb2-12e_toy.py',
          '../../_base_/distill/detr_distill.py']

model = dict(
    _base_.detr_distill,
    architecture=_base_.student,
    teacher=_base_.teacher,
    teacher_ckpt=_base_.teacher_ckpt)

custom_hooks = [dict(type='SyncBuffersHook')]
