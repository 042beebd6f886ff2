# KS-DAB-DETR Swin-T, 50 epochs (KS-DETR release: 47.1 AP with ImageNet-22k->1k fine-tuned
# Swin-T weights; the detrex DAB-DETR Swin-T baseline, 45.2, used ImageNet-1k weights).
# Single-scale: the last Swin stage (768 channels, stride 32), as in DAB-DETR.
_base_ = ['./ks-dab-detr_r50_8xb2-50e_coco.py', '../_base_/backbones/swin.py']

pretrained = ('https://github.com/SwinTransformer/storage/releases/download/v1.0.8/'
              'swin_tiny_patch4_window7_224_22kto1k_finetune.pth')
model = dict(
    backbone=dict(_base_.swin_t_p4_w7, _delete_=True, drop_path_rate=0.2, convert_weights=True,
                  init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[768]))
