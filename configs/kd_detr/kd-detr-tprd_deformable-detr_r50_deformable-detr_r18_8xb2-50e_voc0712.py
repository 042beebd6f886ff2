# Follows the TPRD release (xingyitong1/TPRD) for KD-DETR (weights, schedule, layer i <- layer i).
# KD-DETR + TPRD on Pascal VOC: the VOC baseline config with the TPRD switch on.
_base_ = './kd-detr_deformable-detr_r50_deformable-detr_r18_8xb2-50e_voc0712.py'

model = dict(tprd=True, layer_by_layer=True)  # release pairing, as in the baseline
