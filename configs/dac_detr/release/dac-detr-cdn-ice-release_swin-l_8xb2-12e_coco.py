# The released DAC-DETR "dac_cdn_ice" model, Swin-L, 12 epochs. Release COCO val AP: 58.1.
_base_ = './dac-detr-cdn-release_swin-l_8xb2-12e_coco.py'

model = dict(
    bbox_head=dict(
        loss_cls=dict(_delete_=True, type='IABCELoss', alpha=0.25, gamma=2.0, loss_weight=1.0),
        o2m_rank_tau=1.5))
