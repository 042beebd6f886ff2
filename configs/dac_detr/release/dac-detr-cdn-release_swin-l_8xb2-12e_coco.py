# The released DAC-DETR "dac_cdn" model, Swin-L (window 12, 384 px, ImageNet-22k), 12 epochs.
# Release COCO val AP: 57.3.
_base_ = ['./dac-detr-cdn-release_r50_8xb2-12e_coco.py',
          '../../_base_/backbones/swin.py']
pretrained = 'https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_large_patch4_window12_384_22k.pth'  # noqa

model = dict(
    backbone=dict(_base_.swin_l_p4_w12_384, _delete_=True, convert_weights=True,
                  init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[384, 768, 1536]))
