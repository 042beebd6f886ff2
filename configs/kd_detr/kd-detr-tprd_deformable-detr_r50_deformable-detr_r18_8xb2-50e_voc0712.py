# Follows the TPRD release (xingyitong1/TPRD) for KD-DETR (weights, schedule, layer i <- layer i).
# KD-DETR + TPRD on Pascal VOC: the VOC baseline beside this file with the TPRD switch on, as
# the COCO TPRD config; train and test it as the VOC baseline (kd-detr_..._voc0712.py).
_base_ = './kd-detr_deformable-detr_r50_deformable-detr_r18_8xb2-50e_voc0712.py'

model = _base_.kd_detr_tprd
