# DAC-DETR "dac_cdn", R50, 24 epochs (lr drop at 20). Release COCO val AP: 51.2 (NMS 0.8).
_base_ = './dac-detr-cdn_r50_8xb2-12e_coco.py'

max_epochs = 24
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[20],
         gamma=0.1)
]
