# DAC-DETR (dac_cdn_ice) on the tiny toy DINO: the baseline is
# configs/toy/dino-4scale_tiny-r18_1xb2-12e_toy.py; only the DAC pieces differ (C-stream with
# one-to-many assignment, IA-BCE + rank weights, release encoder loss and CDN box noise 0.4).
_base_ = ['../dino-4scale_tiny-r18_1xb2-12e_toy.py']

model = dict(
    type='DACDINO',
    decoder=dict(share_first_self_attn=True),
    bbox_head=dict(
        type='DACDINOHead',
        loss_cls=dict(_delete_=True, type='IABCELoss', alpha=0.25, gamma=2.0, loss_weight=1.0),
        o2m_rank_tau=1.5,
        o2m_avg_factor_scale=3.0,
        o2m_match_o_boxes=True,
        enc_loss_cls=dict(
            type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=2.0),
        enc_class_agnostic=True),
    dn_cfg=dict(box_noise_scale=0.4),
    train_cfg=dict(
        o2m_assigner=dict(
            type='OneToManyAssigner', iou_weight=0.7, cls_weight=0.3, pos_threshold=0.4,
            max_pos_per_img=75, topk=6)))
