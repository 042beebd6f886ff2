# mmdet SwinTransformer backbones of the Swin configs, written once. Every name starts with
# `swin_`, so a config lists this file next to its own base (mmengine forbids duplicate keys among
# bases) and merges what it changes (pretrained weights, drop path, checkpointing):
#
#   _base_ = ['./<the R50 config>.py', '../_base_/backbones/swin.py']
#   model = dict(backbone=dict(_base_.swin_l_p4_w12, _delete_=True, with_cp=True, ...),
#                neck=dict(in_channels=[384, 768, 1536]))

# Swin-T, patch 4, window 7 (ImageNet 224 px); the last stage: 768 channels, stride 32
swin_t_p4_w7 = dict(
    type='SwinTransformer',
    embed_dims=96,
    depths=[2, 2, 6, 2],
    num_heads=[3, 6, 12, 24],
    window_size=7,
    mlp_ratio=4,
    qkv_bias=True,
    qk_scale=None,
    drop_rate=0.,
    attn_drop_rate=0.,
    patch_norm=True,
    out_indices=(3, ),
    with_cp=False)

# Swin-L, patch 4, window 12, 384 px (ImageNet-22k); stages 2-4: 384 / 768 / 1536 channels
swin_l_p4_w12_384 = dict(
    type='SwinTransformer',
    pretrain_img_size=384,
    embed_dims=192,
    depths=[2, 2, 18, 2],
    num_heads=[6, 12, 24, 48],
    window_size=12,
    mlp_ratio=4,
    qkv_bias=True,
    qk_scale=None,
    drop_rate=0.,
    attn_drop_rate=0.,
    drop_path_rate=0.2,
    patch_norm=True,
    out_indices=(1, 2, 3),
    with_cp=False)
