# KD-DETR + TPRD on the toy set with DAB-DETR: kd-detr_dab-detr_tiny-r18_1xb2-12e_toy.py with
# the TPRD switch on.
_base_ = ['./kd-detr_dab-detr_tiny-r18_1xb2-12e_toy.py']

model = dict(tprd=True)
