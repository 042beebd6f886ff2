# KS-DAB-DETR R50, 50 epochs (KS-DETR release: 43.9 AP; its DAB-DETR baseline 43.3): the
# baseline dab-detr_r50_8xb2-50e_coco.py with triple attention and the sMLP teacher input in the
# last encoder layer (teacher streams and their decoder passes in loss() only).
_base_ = './dab-detr_r50_8xb2-50e_coco.py'

custom_hooks = [dict(type='KSCheckTrainGTHook')]

model = dict(
    type='KSDABDETR',
    ks_cfg=dict(mode='triple', teacher_input=dict(type='KSSMLP')),
    bbox_head=dict(type='KSDABDETRHead'))
