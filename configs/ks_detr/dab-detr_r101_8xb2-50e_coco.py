# DAB-DETR R101, 50 epochs, KS-DETR release settings (baseline of KS-DAB-DETR R101; detrex
# DAB-DETR R101: 44.0 AP). torchvision ResNet-101 weights.
_base_ = './dab-detr_r50_8xb2-50e_coco.py'

model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet101')))
