# The synthetic toy COCO set written by `python tools/misc/make_toy_coco.py --out data/toy_coco`.
# Three classes, images of at most 160 px; every transform is a stock mmdet one.
#
# Every name starts with `toy_`, so a config can list this file next to a stock mmdet config in
# `_base_` (mmengine forbids duplicate keys among bases) and then swap the data in:
#
#   _base_ = ['mmdet::deformable_detr/deformable-detr_r50_16xb2-50e_coco.py',
#             '../_base_/datasets/toy_coco.py', '../_base_/toy_tiny.py']
#   toy_train_dataloader = _base_.toy_train_dataloader   # `_delete_` replaces the COCO loader
#   toy_val_dataloader = _base_.toy_val_dataloader
#   ...
toy_dataset_type = 'CocoDataset'
toy_data_root = 'data/toy_coco/'
toy_metainfo = dict(classes=('rectangle', 'ellipse', 'triangle'),
                palette=[(220, 20, 60), (0, 128, 0), (0, 0, 230)])
toy_backend_args = None
toy_img_scale = (160, 160)

toy_train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=toy_backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=toy_img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
toy_test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=toy_backend_args),
    dict(type='Resize', scale=toy_img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
toy_train_dataloader = dict(
    _delete_=True,
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type=toy_dataset_type,
        data_root=toy_data_root,
        metainfo=toy_metainfo,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        filter_cfg=dict(filter_empty_gt=False, min_size=1),
        pipeline=toy_train_pipeline,
        backend_args=toy_backend_args))
toy_val_dataloader = dict(
    _delete_=True,
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=toy_dataset_type,
        data_root=toy_data_root,
        metainfo=toy_metainfo,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        test_mode=True,
        pipeline=toy_test_pipeline,
        backend_args=toy_backend_args))
toy_test_dataloader = toy_val_dataloader
toy_val_evaluator = dict(
    _delete_=True,
    type='CocoMetric',
    ann_file=toy_data_root + 'annotations/instances_val.json',
    metric='bbox',
    format_only=False,
    backend_args=toy_backend_args)
toy_test_evaluator = toy_val_evaluator
