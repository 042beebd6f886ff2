# Deformable DETR R101, 12 epochs, KS-DETR release hyper-parameters (baseline of
# KS-Deformable-DETR R101 12 ep).
_base_ = './deformable-detr_r50_8xb2-12e_coco.py'

model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet101')))
