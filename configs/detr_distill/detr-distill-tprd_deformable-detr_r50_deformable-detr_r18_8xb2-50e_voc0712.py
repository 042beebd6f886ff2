# Follows the TPRD release (xingyitong1/TPRD) for DETRDistill (no teacher box clamping).
# DETRDistill + TPRD on Pascal VOC (the TPRD release's DETRDistill_TPRD "_voc" config): the VOC
# baseline beside this file (detr-distill-nocl_..._voc0712.py) with the TPRD switch on and TPRD's
# class weight 4.0, as the COCO TPRD config; train and test it as that VOC baseline.
_base_ = './detr-distill-nocl_deformable-detr_r50_deformable-detr_r18_8xb2-50e_voc0712.py'

model = _base_.detr_distill_tprd
