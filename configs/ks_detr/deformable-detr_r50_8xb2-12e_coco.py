# Deformable DETR R50, 12 epochs (drop at epoch 11), KS-DETR release hyper-parameters: the
# baseline of KS-Deformable-DETR 12 ep.
_base_ = './deformable-detr_r50_8xb2-50e_coco.py'

max_epochs = 12
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[11],
         gamma=0.1)
]
