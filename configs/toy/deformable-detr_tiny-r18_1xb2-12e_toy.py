# Stock mmdet Deformable DETR shrunk for CPU: tiny ResNet-18, 4 levels, 1 encoder / 2 decoder layers, 30 queries.
_base_ = [
    'mmdet::deformable_detr/deformable-detr_r50_16xb2-50e_coco.py',
    '../_base_/datasets/toy_coco.py', '../_base_/toy_tiny.py'
]

data_root = _base_.toy_data_root  # --cfg-options data_root=PATH moves all the data
train_dataloader = _base_.toy_train_dataloader
val_dataloader = _base_.toy_val_dataloader
test_dataloader = _base_.toy_test_dataloader
val_evaluator = _base_.toy_val_evaluator
test_evaluator = _base_.toy_test_evaluator
train_cfg = _base_.toy_train_cfg
param_scheduler = _base_.toy_param_scheduler
default_hooks = _base_.toy_default_hooks
custom_imports = _base_.toy_custom_imports
auto_scale_lr = dict(base_batch_size=4)

model = dict(
    num_queries=30,
    backbone=_base_.toy_backbone_c3_c5,
    neck=dict(in_channels=_base_.toy_backbone_c3_c5_channels),
    encoder=dict(num_layers=1, layer_cfg=dict(ffn_cfg=dict(feedforward_channels=512))),
    decoder=dict(num_layers=2, layer_cfg=dict(ffn_cfg=dict(feedforward_channels=512))),
    bbox_head=dict(num_classes=_base_.toy_num_classes),
    test_cfg=dict(max_per_img=30))
