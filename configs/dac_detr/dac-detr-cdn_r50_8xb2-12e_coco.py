# DAC-DETR "dac_cdn" (NeurIPS 2023), R50, 12 epochs: the release's Deformable-DETR++ with CDN is
# mmdet's DINO (two-stage, box refinement, mixed query selection, look forward twice, 900
# queries, 100 CDN queries); DAC adds the C-Decoder stream (no self-attention, one-to-many
# assignment, 3*#GT normaliser) in training only. Release COCO val AP: 50.0 (with NMS 0.8).
# Evaluate like the release with
#   --cfg-options model.test_cfg.nms.type=nms model.test_cfg.nms.iou_threshold=0.8
_base_ = 'mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py'
custom_imports = dict(imports=['mmdet_ksdetr'], allow_failed_imports=False)

model = dict(
    type='DACDINO',
    decoder=dict(share_first_self_attn=True),  # the release's layer-0 sharing
    bbox_head=dict(
        type='DACDINOHead',
        o2m_rank_tau=None,  # rank weights come with IA-BCE ("ice") only
        o2m_avg_factor_scale=3.0,
        o2m_match_o_boxes=True,  # match with O-Decoder boxes and C-Decoder scores
        # encoder proposals: class-agnostic sigmoid focal loss with weight 2, as the release
        enc_loss_cls=dict(
            type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=2.0),
        enc_class_agnostic=True),
    dn_cfg=dict(box_noise_scale=0.4),  # 1.0 in mmdet's DINO
    train_cfg=dict(
        o2m_assigner=dict(
            type='OneToManyAssigner', iou_weight=0.7, cls_weight=0.3, pos_threshold=0.4,
            max_pos_per_img=75, topk=6)))

# AdamW 2e-4, backbone and sampling offsets x0.1, weight decay 1e-4, clip 0.1 (release)
optim_wrapper = dict(
    optimizer=dict(lr=2e-4),
    paramwise_cfg=dict(custom_keys={
        'backbone': dict(lr_mult=0.1),
        'sampling_offsets': dict(lr_mult=0.1)
    }))
