# Conditional DETR R50, 50 epochs, with the KS-DETR release's (detrex) settings: the baseline of
# KS-Conditional-DETR (detrex-trained: 41.6 AP). Stock mmdet Conditional DETR (FFN 2048, dropout
# 0.1, ReLU, 300 queries, losses 2/5/2, costs 2/5/2, AdamW 1e-4, clip 0.1, backbone lr x0.1,
# drop at epoch 40) plus top-300 evaluation and no weight decay on norm layers.
_base_ = 'mmdet::conditional_detr/conditional-detr_r50_8xb2-50e_coco.py'

custom_imports = dict(imports=['mmdet_ksdetr'], allow_failed_imports=False)

model = dict(test_cfg=dict(max_per_img=300))

optim_wrapper = dict(paramwise_cfg=dict(norm_decay_mult=0.0))
