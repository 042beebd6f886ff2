# KS-DN-DETR R50, 50 epochs (KS-DETR release: 45.2 AP; DN-DETR baseline 44.7): DN-DETR with
# triple attention (sMLP) in the last encoder layer; the teacher decoder passes get the same DN
# queries and DN attention mask, and every teacher group the matching and DN losses.
_base_ = './dn-detr_r50_8xb2-50e_coco.py'

custom_hooks = [dict(type='KSCheckTrainGTHook')]

model = dict(
    type='KSDNDETR',
    ks_cfg=dict(mode='triple', teacher_input=dict(type='KSSMLP')),
    bbox_head=dict(type='KSDNDETRHead'))
