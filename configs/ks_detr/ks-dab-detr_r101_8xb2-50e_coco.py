# KS-DAB-DETR R101, 50 epochs (KS-DETR release: 45.3 AP; DAB-DETR R101 baseline 44.0).
# The release uses detectron2's R-101.pkl; here torchvision's ResNet-101.
_base_ = './ks-dab-detr_r50_8xb2-50e_coco.py'

model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet101')))
