# Follows the TPRD release (xingyitong1/TPRD) for KD-DETR (weights, schedule, layer i <- layer i).
# KD-DETR + TPRD on DAB-DETR R50 -> R18: the baseline config with the TPRD switch on.
_base_ = './kd-detr_dab-detr_r50_dab-detr_r18_8xb2-50e_coco.py'

model = _base_.kd_detr_tprd
