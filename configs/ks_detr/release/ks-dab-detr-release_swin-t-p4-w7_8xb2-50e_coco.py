# KS-DAB-DETR-Swin-T, 50 epochs: the KS-DETR release checkpoint (edocanonymous/KS-DETR,
# README row "KS-DAB-DETR-Swin-T", config ks_dab_detr_swin_tiny_50ep_smlp_qkv_triple_attn_
# share_outproj_ffn),
# https://drive.google.com/file/d/1P971eidVaB0nt9Uhs6tOG79-q98G9eHg/view?usp=share_link
# (the README gives the same link for KS-Conditional-DETR-R50: the converter tells from the
# file which model it holds), published box AP 47.1 (the release's number, COCO val2017; not
# re-measured here).
# The R50 release config with the release's backbone: detectron2's SwinTransformer
# (embed_dim 96, depths 2-2-6-2, heads 3-6-12-24, window 7, mlp_ratio 4, qkv bias, patch norm,
# no absolute position embedding, out_indices (3,): one output LayerNorm, norm3) as mmdet's
# SwinTransformer, and the input projection from its 768 channels. The converter renames the
# Swin tensors and reorders the patch-merging channels (mmdet_ksdetr/converters/release/swin.py);
# the KS teacher streams are training-only and dropped.
#   python tools/model_converters/release_to_mmdet.py ks_dab_detr_swin_t.pth \
#       ks-dab-detr_swin-t_8xb2-50e_coco.pth --source ks-detr \
#       --config configs/ks_detr/release/ks-dab-detr-release_swin-t-p4-w7_8xb2-50e_coco.py
_base_ = ['./ks-dab-detr-release_r50_8xb2-50e_coco.py',
          '../../_base_/backbones/swin.py']

model = dict(
    # init_cfg=None: every backbone tensor comes from the converted release checkpoint
    backbone=dict(_base_.swin_t_p4_w7, _delete_=True, patch_size=4, use_abs_pos_embed=False,
                  drop_path_rate=0.1, convert_weights=False, init_cfg=None),
    neck=dict(in_channels=[768]))
