# Teacher of DETRDistill: stock mmdet Deformable DETR with a ResNet-101 backbone (train it first:
#   bash tools/dist_train.sh configs/detectors/deformable-detr_r101_16xb2-50e_coco.py 8).
_base_ = 'mmdet::deformable_detr/deformable-detr_r50_16xb2-50e_coco.py'

model = dict(
    backbone=dict(depth=101,
                  init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet101')))
custom_imports = dict(imports=['mmdet_ksdetr'], allow_failed_imports=False)
