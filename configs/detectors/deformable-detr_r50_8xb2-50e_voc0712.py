# Teacher for the Pascal VOC distillation runs: stock mmdet Deformable DETR R50 trained on VOC
# 2007+2012 trainval (20 classes), tested on VOC 2007 test (VOCMetric mAP, 11-point), DETR
# augmentation, lr 1e-4, 50 epochs with the lr drop at 40 (the TPRD release's VOC schedule): the
# mmdet COCO config with the VOC data of configs/_base_/datasets/voc0712_detr.py.
# Train it first (the TPRD release does not ship a VOC teacher):
#   bash tools/dist_train.sh configs/detectors/deformable-detr_r50_8xb2-50e_voc0712.py 8
_base_ = ['mmdet::deformable_detr/deformable-detr_r50_16xb2-50e_coco.py',
          '../_base_/datasets/voc0712_detr.py']

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
custom_imports = dict(imports=['mmdet_ksdetr'], allow_failed_imports=False)
