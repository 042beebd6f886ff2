# Student of the Pascal VOC distillation runs (and its test config for tools/test.py): the
# Deformable DETR R18 of deformable-detr_r18_16xb2-50e_coco.py with the VOC data of
# configs/_base_/datasets/voc0712_detr.py (20 classes, lr 1e-4, 50 epochs, lr drop at 40).
_base_ = ['./deformable-detr_r18_16xb2-50e_coco.py', '../_base_/datasets/voc0712_detr.py']

model = dict(bbox_head=dict(num_classes=_base_.voc_num_classes))
data_root = _base_.voc_data_root  # --cfg-options data_root=PATH moves all the data
train_dataloader = dict(dataset=dict(_base_.voc_trainval, datasets=[
    dict(d, pipeline=_base_.train_pipeline) for d in _base_.voc_trainval.datasets]))
val_dataloader = dict(dataset=dict(_base_.voc_test, pipeline=_base_.test_pipeline))
test_dataloader = val_dataloader
val_evaluator = test_evaluator = _base_.voc_evaluator
optim_wrapper = _base_.voc_optim_wrapper
train_cfg = _base_.voc_train_cfg
param_scheduler = _base_.voc_param_scheduler
auto_scale_lr = _base_.voc_auto_scale_lr
