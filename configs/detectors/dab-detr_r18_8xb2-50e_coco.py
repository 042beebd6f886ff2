# Student of the DAB-DETR R50 -> R18 KD-DETR runs (and its test config for tools/test.py): stock
# mmdet DAB-DETR with a ResNet-18 backbone (C5, 512 channels).
_base_ = 'mmdet::dab_detr/dab-detr_r50_8xb2-50e_coco.py'

model = dict(
    backbone=dict(depth=18,
                  init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet18')),
    neck=dict(in_channels=[512]))
custom_imports = dict(imports=['mmdet_ksdetr'], allow_failed_imports=False)
