# KS-Conditional-DETR R50, 50 epochs (KS-DETR release: 45.3 AP, unverified; detrex baseline
# 41.6): the baseline conditional-detr_r50_8xb2-50e_coco.py with triple attention and the sMLP
# teacher input in the last encoder layer.
_base_ = './conditional-detr_r50_8xb2-50e_coco.py'

custom_hooks = [dict(type='KSCheckTrainGTHook')]

model = dict(
    type='KSConditionalDETR',
    ks_cfg=dict(mode='triple', teacher_input=dict(type='KSSMLP')),
    bbox_head=dict(type='KSConditionalDETRHead'))
