# Conditional DETR R101, 50 epochs, KS-DETR release settings (baseline of KS-Conditional-DETR
# R101; converted official model: 43.0 AP).
_base_ = './conditional-detr_r50_8xb2-50e_coco.py'

model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet101')))
