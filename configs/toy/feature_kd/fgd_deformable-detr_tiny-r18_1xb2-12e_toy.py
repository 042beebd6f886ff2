# FGD feature baseline on the toy set: focal (GT foreground / background, attention-weighted) and
# global (context block) distillation of the four ChannelMapper outputs with the FGD paper's
# coefficients (temp 0.5, alpha 1e-3, beta 5e-4, gamma 5e-4, lambda 5e-6). No TPRD variant.
# Student config (tools/test.py with the tools/pth_transfer.py output):
#   configs/toy/deformable-detr_tiny-r18-student_1xb2-12e_toy.py
_base_ = ['./fitnet_deformable-detr_tiny-r18_1xb2-12e_toy.py']

model = _base_.fgd
