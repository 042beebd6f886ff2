# DAB-DETR R50, 50 epochs, with the KS-DETR release's (detrex) settings: the baseline of
# KS-DAB-DETR (detrex DAB-DETR R50: 43.3 AP). Stock mmdet DAB-DETR (FFN 2048, dropout 0, PReLU,
# 300 queries, losses 1/5/2, costs 2/5/2, sine temperature 20, AdamW 1e-4, wd 1e-4, clip 0.1,
# backbone lr x0.1, drop at epoch 40, top-300) plus random anchor-box centres
# (freeze_anchor_box_centers) and no weight decay on norm layers.
_base_ = 'mmdet::dab_detr/dab-detr_r50_8xb2-50e_coco.py'

custom_imports = dict(imports=['mmdet_ksdetr'], allow_failed_imports=False)

model = dict(with_random_refpoints=True)

optim_wrapper = dict(paramwise_cfg=dict(norm_decay_mult=0.0))
