# KS-Deformable-DETR R101, 12 epochs: the KS-DETR release checkpoint (edocanonymous/KS-DETR,
# README row "KS-Deformable-DETR-R101" 12 ep, projects/ks_detr/configs/ks_deformable_detr/
# ks_deformable_detr_r101_12ep_smlp_qkv_triple_attn_outproj_ffn_v0.py),
# https://drive.google.com/file/d/1fd2qTXZnGxocq5m5rc97uFRa0WbhiSJl/view?usp=share_link
# published box AP 38.4 (the release's number, COCO val2017; not re-measured here).
# Its inference model is detrex's plain Deformable-DETR (no box refinement, not two-stage):
# the KS teacher stream of the last encoder layer (attention_weights_teacher /
# value_proj_teacher) and the sMLP (ksgt.*) are training-only and dropped by the converter.
#   python tools/model_converters/release_to_mmdet.py ks_deformable_detr_r101_12ep.pth \
#       ks-deformable-detr_r101_8xb2-12e_coco.pth --source ks-detr \
#       --config configs/ks_detr/release/ks-deformable-detr-release_r101_8xb2-12e_coco.py
# Same model as configs/detrex/deformable-detr-detrex_r50_8xb2-50e_coco.py (detrex settings:
# FFN 1024, dropout 0.1, 300 queries, neck conv bias, inverse_sigmoid eps 1e-3, top-300 boxes)
# with a ResNet-101 backbone.
_base_ = './ks-deformable-detr-release_r101_8xb2-50e_coco.py'

# detrex's 12-epoch schedule: lr x0.1 after epoch 11
max_epochs = 12
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True,
                        milestones=[11], gamma=0.1)]
