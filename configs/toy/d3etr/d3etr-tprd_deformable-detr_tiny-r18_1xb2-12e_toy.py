# D3ETR + TPRD on the toy set: d3etr_deformable-detr_tiny-r18_1xb2-12e_toy.py with the TPRD switch
# on (refined targets, decoupled class loss) and TPRD's class weight 3 for both groups.
# Student config (tools/test.py with the tools/pth_transfer.py output):
#   configs/toy/deformable-detr_tiny-r18_1xb2-12e_toy.py
_base_ = ['./d3etr_deformable-detr_tiny-r18_1xb2-12e_toy.py']

model = _base_.d3etr_tprd
