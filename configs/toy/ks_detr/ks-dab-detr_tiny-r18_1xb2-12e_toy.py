# KS-DAB-DETR on the toy set: the tiny DAB-DETR of dab-detr_tiny-r18_1xb2-12e_toy.py with triple
# attention (sMLP teacher input) in its (only) encoder layer. Same budget as its baseline.
_base_ = ['../dab-detr_tiny-r18_1xb2-12e_toy.py']

model = dict(
    type='KSDABDETR',
    ks_cfg=dict(mode='triple', teacher_input=dict(type='KSSMLP')),
    bbox_head=dict(type='KSDABDETRHead'))
custom_hooks = [dict(type='KSCheckTrainGTHook')]
