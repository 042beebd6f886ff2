# Follows the TPRD release (xingyitong1/TPRD) for D3ETR (no official D3ETR code exists).
# D3ETR + TPRD on Pascal VOC: the VOC baseline beside this file with the TPRD switch on and
# TPRD's class weight 3 for both groups, as the COCO TPRD config; train and test it as the VOC
# baseline (d3etr_..._voc0712.py).
_base_ = './d3etr_deformable-detr_r50_deformable-detr_r18_8xb2-50e_voc0712.py'

model = _base_.d3etr_tprd
