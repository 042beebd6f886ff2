# Follows the TPRD release (xingyitong1/TPRD) for DETRDistill (no teacher box clamping).
# DETRDistill + TPRD on Pascal VOC (the TPRD release's DETRDistill_TPRD "_voc" config): the VOC
# detr-distill-nocl baseline with the TPRD switch on and TPRD's class weight 4.0.
_base_ = './detr-distill-nocl_deformable-detr_r50_deformable-detr_r18_8xb2-50e_voc0712.py'

model = dict(
    tprd=True,
    clamp_teacher_boxes=False,  # the TPRD release never clamps teacher boxes
    distiller=dict(distill_losses=dict(loss_logits_kd=dict(loss_cls_weight=4.0))))
