# Follows the TPRD release (xingyitong1/TPRD) for KD-DETR (weights, schedule, layer i <- layer i).
# KD-DETR + TPRD on DINO-4scale R50 -> R18: the baseline config with the TPRD switch on.
_base_ = './kd-detr_dino-4scale_r50_dino-4scale_r18_8xb2-12e_coco.py'

model = _base_.kd_detr_tprd
