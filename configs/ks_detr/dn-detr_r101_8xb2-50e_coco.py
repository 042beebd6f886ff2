# DN-DETR R101, 50 epochs (baseline of KS-DN-DETR R101).
_base_ = './dn-detr_r50_8xb2-50e_coco.py'

model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet101')))
