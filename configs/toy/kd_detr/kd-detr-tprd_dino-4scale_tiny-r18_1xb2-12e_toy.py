# KD-DETR + TPRD on the toy set with DINO-4scale: kd-detr_dino-4scale_tiny-r18_1xb2-12e_toy.py
# with the TPRD switch on.
_base_ = ['./kd-detr_dino-4scale_tiny-r18_1xb2-12e_toy.py']

model = dict(tprd=True)
