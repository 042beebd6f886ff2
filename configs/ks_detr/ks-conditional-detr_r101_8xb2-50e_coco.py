# KS-Conditional-DETR R101, 50 epochs (KS-DETR release: 47.1 AP, unverified; converted
# Conditional-DETR R101 baseline 43.0).
_base_ = './ks-conditional-detr_r50_8xb2-50e_coco.py'

model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet101')))
