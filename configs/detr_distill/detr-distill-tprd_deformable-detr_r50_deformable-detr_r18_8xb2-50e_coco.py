# Follows the TPRD release (xingyitong1/TPRD) for DETRDistill (no teacher box clamping).
# DETRDistill + TPRD (the TPRD release's DETRDistill_TPRD): the
# detr-distill-nocl baseline config with the TPRD switch on (refined targets and decoupled class
# loss for the Hungarian logits distillation) and TPRD's class weight 4.0.
_base_ = './detr-distill-nocl_deformable-detr_r50_deformable-detr_r18_8xb2-50e_coco.py'

model = _base_.detr_distill_tprd
