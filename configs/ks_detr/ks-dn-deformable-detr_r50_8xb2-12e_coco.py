# KS-DN-Deformable-DETR R50, 12 epochs (KS-DETR release: 46.5 AP): DN-Deformable-DETR with
# deformable triple attention (v0) and the sMLP in the last encoder layer; teacher passes get
# the same DN queries / mask and refine their own boxes; teacher groups get matching + DN losses.
_base_ = './dn-deformable-detr_r50_8xb2-12e_coco.py'

custom_hooks = [dict(type='KSCheckTrainGTHook')]

model = dict(
    type='KSDNDeformableDETR',
    ks_cfg=dict(mode='triple', teacher_input=dict(type='KSSMLP')),
    bbox_head=dict(type='KSDNDeformableDETRHead'))
