# DAC-DETR "dac_cdn_ice", R50, 12 epochs: dac_cdn plus the IoU-aware BCE ("ice") on every
# decoder term (one-to-one, one-to-many, CDN) and rank weights exp(-rank/1.5) on the
# one-to-many cls target and box terms. Release COCO val AP: 50.9 (NMS 0.8).
_base_ = './dac-detr-cdn_r50_8xb2-12e_coco.py'

model = dict(
    bbox_head=dict(
        loss_cls=dict(_delete_=True, type='IABCELoss', alpha=0.25, gamma=2.0, loss_weight=1.0),
        o2m_rank_tau=1.5))
