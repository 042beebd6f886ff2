# Teacher for the Pascal VOC distillation runs: stock mmdet Deformable DETR R50 trained on VOC
# 2007+2012 trainval (20 classes), tested on VOC 2007 test (VOCMetric mAP, 11-point), DETR
# augmentation, lr 1e-4, 50 epochs with the lr drop at 40 (the TPRD release's VOC schedule).
# Train it first (the TPRD release does not ship a VOC teacher):
#   bash tools/dist_train.sh configs/detectors/deformable-detr_r50_8xb2-50e_voc0712.py 8
_base_ = 'mmdet::deformable_detr/deformable-detr_r50_16xb2-50e_coco.py'

data_root = 'data/VOCdevkit/'  # --cfg-options data_root=PATH moves all the data
voc_train = dict(
    type='ConcatDataset',
    ignore_keys=['dataset_type'],
    datasets=[
        dict(type='VOCDataset', data_root=data_root,
             ann_file=f'VOC{year}/ImageSets/Main/trainval.txt',
             data_prefix=dict(sub_data_root=f'VOC{year}/'),
             filter_cfg=dict(filter_empty_gt=False, min_size=32, bbox_min_size=32),
             pipeline=_base_.train_pipeline, backend_args=None) for year in ('2007', '2012')
    ])

model = dict(bbox_head=dict(num_classes=20))
train_dataloader = dict(batch_size=2, dataset=dict(_delete_=True, **voc_train))
val_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='VOCDataset',
        data_root=data_root,
        ann_file='VOC2007/ImageSets/Main/test.txt',
        data_prefix=dict(sub_data_root='VOC2007/'),
        test_mode=True,
        pipeline=_base_.test_pipeline,
        backend_args=None))
test_dataloader = val_dataloader
val_evaluator = dict(_delete_=True, type='VOCMetric', metric='mAP', eval_mode='11points')
test_evaluator = val_evaluator
optim_wrapper = dict(optimizer=dict(lr=1e-4))
auto_scale_lr = dict(base_batch_size=16)
custom_imports = dict(imports=['mmdet_ksdetr'], allow_failed_imports=False)
