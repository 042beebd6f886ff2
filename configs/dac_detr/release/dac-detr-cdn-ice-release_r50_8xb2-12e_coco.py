# The released DAC-DETR "dac_cdn_ice" model, R50, 12 epochs: the same network as dac_cdn,
# trained with the IoU-aware BCE and rank weights exp(-rank/1.5). Release COCO val AP: 50.9.
_base_ = './dac-detr-cdn-release_r50_8xb2-12e_coco.py'

model = dict(
    bbox_head=dict(
        loss_cls=dict(_delete_=True, type='IABCELoss', alpha=0.25, gamma=2.0, loss_weight=1.0),
        o2m_rank_tau=1.5))
