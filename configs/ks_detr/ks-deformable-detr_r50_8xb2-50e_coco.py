# KS-Deformable-DETR R50, 50 epochs (KS-DETR release: 44.8 AP): the baseline
# deformable-detr_r50_8xb2-50e_coco.py with deformable triple attention (v0: the teachers reuse
# the student's sampling locations) and the sMLP in the last encoder layer.
_base_ = './deformable-detr_r50_8xb2-50e_coco.py'

custom_hooks = [dict(type='KSCheckTrainGTHook')]

model = dict(
    type='KSDeformableDETR',
    ks_cfg=dict(mode='triple', teacher_input=dict(type='KSSMLP')),
    bbox_head=dict(type='KSDeformableDETRHead'))
