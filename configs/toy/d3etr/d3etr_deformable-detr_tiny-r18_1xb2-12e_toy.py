# D3ETR on the toy set: tiny Deformable DETR teacher and student (30 queries each: TPRD's D3ETR
# pairs every query), adaptive + fixed matching, predictions 1 / 5 / 2, self-attention 1e4,
# cross-attention 1e3. TPRD variant: d3etr-tprd_deformable-detr_tiny-r18_1xb2-12e_toy.py.
#
#   PORT=29641 bash tools/dist_train.sh \
#       configs/toy/d3etr/d3etr_deformable-detr_tiny-r18_1xb2-12e_toy.py 2
# Student config (tools/test.py with the tools/pth_transfer.py output):
#   configs/toy/deformable-detr_tiny-r18_1xb2-12e_toy.py
_base_ = ['../deformable-detr_tiny-r18_1xb2-12e_toy.py', '../../_base_/distill/d3etr.py']

teacher_ckpt = 'work_dirs/deformable-detr_tiny-r18_1xb2-12e_toy/epoch_12.pth'

student = dict(_base_.model, _scope_='mmdet')
teacher = dict(_base_.model, _scope_='mmdet')

model = dict(
    _base_.d3etr, architecture=student, teacher=teacher, teacher_ckpt=teacher_ckpt)

find_unused_parameters = True
