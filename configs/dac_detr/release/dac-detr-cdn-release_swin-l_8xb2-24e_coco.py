# The DAC-DETR "dac_cdn" model, Swin-L, 24 epochs (lr drop after epoch 20).
_base_ = './dac-detr-cdn-release_swin-l_8xb2-12e_coco.py'

max_epochs = 24
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[20],
         gamma=0.1)
]
