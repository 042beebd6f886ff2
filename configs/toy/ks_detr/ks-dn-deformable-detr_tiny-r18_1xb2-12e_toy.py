# KS-DN-Deformable-DETR on the toy set: dn-deformable-detr_tiny-r18_1xb2-12e_toy.py with
# deformable triple attention (v0) in its (only) encoder layer. Same budget as its baseline.
_base_ = ['../dn-deformable-detr_tiny-r18_1xb2-12e_toy.py']

model = dict(
    type='KSDNDeformableDETR',
    ks_cfg=dict(mode='triple', teacher_input=dict(type='KSSMLP')),
    bbox_head=dict(type='KSDNDeformableDETRHead'))
custom_hooks = [dict(type='KSCheckTrainGTHook')]
