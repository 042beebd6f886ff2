# Deformable DETR R101, 50 epochs, KS-DETR release hyper-parameters (baseline of
# KS-Deformable-DETR R101 50 ep).
_base_ = './deformable-detr_r50_8xb2-50e_coco.py'

model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet101')))
