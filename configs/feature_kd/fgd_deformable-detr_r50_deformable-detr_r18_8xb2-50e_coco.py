# Follows the TPRD release (xingyitong1/TPRD) for this feature baseline.
# FGD feature baseline: Deformable DETR R50 -> R18, 50 epochs, 8 GPUs x 2 images; focal and
# global distillation of the four ChannelMapper outputs with the FGD paper's coefficients
# (temp 0.5, alpha 1e-3, beta 5e-4, gamma 5e-4, lambda 5e-6). No TPRD variant (features only).
_base_ = './fitnet_deformable-detr_r50_deformable-detr_r18_8xb2-50e_coco.py'

model = _base_.fgd
