# Follows the TPRD release (xingyitong1/TPRD) for KD-DETR (weights, schedule, layer i <- layer i).
# KD-DETR + TPRD: the KD-DETR baseline config with the TPRD switch on (the teacher's specific
# points get refined, layer-by-layer targets and the decoupled class loss; general points are
# unchanged). Weights as in the TPRD release (2 / 5 / 2 for both groups).
_base_ = './kd-detr_deformable-detr_r50_deformable-detr_r18_8xb2-50e_coco.py'

model = _base_.kd_detr_tprd
