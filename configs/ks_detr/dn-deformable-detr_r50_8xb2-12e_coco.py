# DN-Deformable-DETR R50, 12 epochs (baseline of KS-DN-Deformable-DETR; mmdet has none).
# Deformable DETR with box refinement, 4-D anchor queries (DINO's decoder) and DN-DETR
# denoising (5 groups, label noise 0.2, box noise 0.4, indicator); FFN 2048, dropout 0;
# KS-DETR release optimiser (lr 1e-4, no lr x0.1 on offsets / references, no norm decay);
# losses 1/5/2 plus DN losses; top-300 evaluation; drop at epoch 11.
_base_ = './deformable-detr_r50_8xb2-12e_coco.py'

model = dict(
    type='DNDeformableDETR',
    with_box_refine=True,
    encoder=dict(layer_cfg=dict(ffn_cfg=dict(feedforward_channels=2048, ffn_drop=0.0))),
    decoder=dict(
        layer_cfg=dict(
            self_attn_cfg=dict(dropout=0.0),
            cross_attn_cfg=dict(dropout=0.0),
            ffn_cfg=dict(feedforward_channels=2048, ffn_drop=0.0))),
    dn_cfg=dict(
        label_noise_scale=0.2,
        box_noise_scale=0.4,
        group_cfg=dict(dynamic=False, num_groups=5),
        with_indicator=True),
    bbox_head=dict(type='DINOHead'))
