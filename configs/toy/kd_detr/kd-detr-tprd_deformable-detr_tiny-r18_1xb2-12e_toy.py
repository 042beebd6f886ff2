# KD-DETR + TPRD on the toy set: kd-detr_deformable-detr_tiny-r18_1xb2-12e_toy.py with the TPRD
# switch on (refined, layer-by-layer teacher targets and decoupled class loss for the teacher's
# own queries).
# Student config (tools/test.py with the tools/pth_transfer.py output):
#   configs/toy/deformable-detr_tiny-r18-student_1xb2-12e_toy.py
_base_ = ['./kd-detr_deformable-detr_tiny-r18_1xb2-12e_toy.py']

model = dict(tprd=True)
