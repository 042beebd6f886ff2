# FitNet feature baseline on the toy set: the student's four ChannelMapper outputs imitate the
# teacher's through a 1x1 hint regressor (MMRazor ConvModuleConnector + L2Loss, mean squared
# error, weight 10 as in the TPRD release's FitNet baseline). No TPRD variant (features only).
# Student config (tools/test.py with the tools/pth_transfer.py output):
#   configs/toy/deformable-detr_tiny-r18-student_1xb2-12e_toy.py
_base_ = ['../deformable-detr_tiny-r18_1xb2-12e_toy.py', '../../_base_/distill/feature_kd.py']

teacher_ckpt = 'work_dirs/deformable-detr_tiny-r18_1xb2-12e_toy/epoch_12.pth'

student = dict(_base_.model, num_queries=20, _scope_='mmdet')
teacher = dict(_base_.model, _scope_='mmdet')

model = dict(
    _base_.fitnet, architecture=student, teacher=teacher, teacher_ckpt=teacher_ckpt)

find_unused_parameters = True
