# KS-Deformable-DETR R101, 50 epochs (KS-DETR release: 46.0 AP).
_base_ = './ks-deformable-detr_r50_8xb2-50e_coco.py'

model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet101')))
