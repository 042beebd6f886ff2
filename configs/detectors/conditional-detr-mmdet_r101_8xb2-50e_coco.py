# Teacher of the Conditional DETR DETRDistill run: stock mmdet Conditional DETR, ResNet-101.
_base_ = 'mmdet::conditional_detr/conditional-detr_r50_8xb2-50e_coco.py'

model = dict(
    backbone=dict(depth=101,
                  init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet101')))
custom_imports = dict(imports=['mmdet_ksdetr'], allow_failed_imports=False)
