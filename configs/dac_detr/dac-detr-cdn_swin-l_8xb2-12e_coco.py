# DAC-DETR "dac_cdn", Swin-L (window 12, 384 px, ImageNet-22k), 12 epochs, drop path 0.2.
# Release COCO val AP: 57.3 (NMS 0.8). Four feature levels as the release's Deformable-DETR++
# (strides 8/16/32 from Swin stages 2-4 plus one extra level), not mmdet DINO's 5-scale.
_base_ = ['./dac-detr-cdn_r50_8xb2-12e_coco.py', '../_base_/backbones/swin.py']

pretrained = 'https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_large_patch4_window12_384_22k.pth'  # noqa
model = dict(
    backbone=dict(_base_.swin_l_p4_w12_384, _delete_=True, with_cp=True, convert_weights=True,
                  init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[384, 768, 1536]))
