# Follows the TPRD release (xingyitong1/TPRD) for D3ETR (no official D3ETR code exists).
# D3ETR + TPRD: the D3ETR baseline with the TPRD switch on (refined targets for both matchings,
# decoupled class loss) and TPRD's class weight 3 for both groups.
_base_ = './d3etr_deformable-detr_r50_deformable-detr_r18_8xb2-50e_coco.py'

model = _base_.d3etr_tprd
