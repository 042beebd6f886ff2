# DAC-DETR "dac_cdn", Swin-L, 24 epochs (lr drop at 20). The release reports no number for this
# row; the config completes the grid.
_base_ = './dac-detr-cdn_swin-l_8xb2-12e_coco.py'

max_epochs = 24
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[20],
         gamma=0.1)
]
