# KD-DETR + TPRD on the toy set with DAB-DETR: kd-detr_dab-detr_tiny-r18_1xb2-12e_toy.py with
# the TPRD switch on.
# Student config (tools/test.py with the tools/pth_transfer.py output):
#   configs/toy/dab-detr_tiny-r18-student_1xb2-12e_toy.py
_base_ = ['./kd-detr_dab-detr_tiny-r18_1xb2-12e_toy.py']

model = dict(tprd=True)
