# Shared settings of the tiny CPU configs under configs/toy/. Names start with `toy_` so this
# file can sit next to a stock mmdet config in `_base_` (see datasets/toy_coco.py).
# Random-init ResNet-18 at 1/4 width (16-128 channels): nothing is downloaded.
toy_num_classes = 3
toy_max_epochs = 12


def _toy_resnet(out_indices):
    return dict(
        _delete_=True,
        type='ResNet',
        depth=18,
        base_channels=16,
        num_stages=4,
        out_indices=out_indices,
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        style='pytorch',
        init_cfg=None)


toy_backbone_c5 = _toy_resnet((3, ))  # 128 channels, stride 32
toy_backbone_c5_channels = [128]
toy_backbone_c3_c5 = _toy_resnet((1, 2, 3))  # 32/64/128 channels, strides 8/16/32
toy_backbone_c3_c5_channels = [32, 64, 128]

toy_train_cfg = dict(
    _delete_=True, type='EpochBasedTrainLoop', max_epochs=toy_max_epochs, val_interval=4)
toy_param_scheduler = [
    dict(type='MultiStepLR', begin=0, end=toy_max_epochs, by_epoch=True, milestones=[10],
         gamma=0.1)
]
toy_default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2))
toy_custom_imports = dict(imports=['mmdet_ksdetr'], allow_failed_imports=False)
