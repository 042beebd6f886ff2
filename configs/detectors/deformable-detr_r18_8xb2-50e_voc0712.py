# Student of the Pascal VOC distillation runs (and its test config for tools/test.py): the VOC
# Deformable DETR with a ResNet-18 backbone.
_base_ = './deformable-detr_r50_8xb2-50e_voc0712.py'

model = dict(
    backbone=dict(depth=18,
                  init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet18')),
    neck=dict(in_channels=[128, 256, 512]))
