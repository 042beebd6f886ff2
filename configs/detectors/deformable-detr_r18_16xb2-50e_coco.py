# Student of the R50 -> R18 DETRDistill run (also its test config for tools/test.py): stock mmdet
# Deformable DETR with a ResNet-18 backbone (C3-C5: 128/256/512 channels).
_base_ = 'mmdet::deformable_detr/deformable-detr_r50_16xb2-50e_coco.py'

model = dict(
    backbone=dict(depth=18,
                  init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet18')),
    neck=dict(in_channels=[128, 256, 512]))
custom_imports = dict(imports=['mmdet_ksdetr'], allow_failed_imports=False)
