# KS-Deformable-DETR R101, 12 epochs (KS-DETR release: 38.4 AP).
_base_ = './ks-deformable-detr_r50_8xb2-12e_coco.py'

model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet101')))
