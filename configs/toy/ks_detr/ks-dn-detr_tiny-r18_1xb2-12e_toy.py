# KS-DN-DETR on the toy set: dn-detr_tiny-r18_1xb2-12e_toy.py with triple attention (sMLP
# teacher input) in its (only) encoder layer. Same budget as its baseline.
_base_ = ['../dn-detr_tiny-r18_1xb2-12e_toy.py']

model = dict(
    type='KSDNDETR',
    ks_cfg=dict(mode='triple', teacher_input=dict(type='KSSMLP')),
    bbox_head=dict(type='KSDNDETRHead'))
custom_hooks = [dict(type='KSCheckTrainGTHook')]
