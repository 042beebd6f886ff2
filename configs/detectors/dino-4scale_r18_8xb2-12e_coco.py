# Student of the DINO-4scale R50 -> R18 KD-DETR runs (and its test config for tools/test.py):
# stock mmdet DINO-4scale with a ResNet-18 backbone (C3-C5: 128/256/512 channels).
_base_ = 'mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py'

model = dict(
    backbone=dict(depth=18,
                  init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet18')),
    neck=dict(in_channels=[128, 256, 512]))
custom_imports = dict(imports=['mmdet_ksdetr'], allow_failed_imports=False)
