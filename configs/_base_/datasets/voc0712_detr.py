# Pascal VOC 07+12 for the DETR-family VOC configs (the TPRD release's VOC setting): train on VOC
# 2007+2012 trainval, test on VOC 2007 test (VOCMetric mAP, 11-point), 20 classes, lr 1e-4, 50
# epochs with the lr drop at 40, 8 GPUs x 2 images (total batch 16). The teacher of the VOC
# distillation runs is configs/detectors/deformable-detr_r50_8xb2-50e_voc0712.py.
#
# Every name starts with `voc_`, so a VOC config lists this file next to its COCO sibling in
# `_base_` (mmengine forbids duplicate keys among bases) and swaps the data in. The datasets carry
# no pipeline: the VOC config keeps its COCO sibling's (DETR augmentation):
#
#   _base_ = ['./<its COCO sibling>_coco.py', '../_base_/datasets/voc0712_detr.py']
#   data_root = _base_.voc_data_root  # --cfg-options data_root=PATH moves all the data
#   train_dataloader = dict(dataset=dict(_base_.voc_trainval, datasets=[
#       dict(d, pipeline=_base_.train_pipeline) for d in _base_.voc_trainval.datasets]))
#   val_dataloader = dict(dataset=dict(_base_.voc_test, pipeline=_base_.test_pipeline))
#   test_dataloader = val_dataloader
#   val_evaluator = test_evaluator = _base_.voc_evaluator
#   optim_wrapper = _base_.voc_optim_wrapper
#   ...                                  # train_cfg, param_scheduler, auto_scale_lr likewise
#   model = dict(bbox_head=dict(num_classes=_base_.voc_num_classes))  # a detector; a distiller
#   # sets it in `student` and `teacher` (merged into its COCO sibling's) and takes
#   # teacher_ckpt = _base_.voc_teacher_ckpt
voc_data_root = 'data/VOCdevkit/'
voc_num_classes = 20
# what configs/detectors/deformable-detr_r50_8xb2-50e_voc0712.py writes after its 50 epochs
voc_teacher_ckpt = 'work_dirs/deformable-detr_r50_8xb2-50e_voc0712/epoch_50.pth'

voc_trainval = dict(
    _delete_=True,
    type='ConcatDataset',
    ignore_keys=['dataset_type'],
    datasets=[
        dict(type='VOCDataset', data_root=voc_data_root,
             ann_file=f'VOC{year}/ImageSets/Main/trainval.txt',
             data_prefix=dict(sub_data_root=f'VOC{year}/'),
             filter_cfg=dict(filter_empty_gt=False, min_size=32, bbox_min_size=32),
             backend_args=None) for year in ('2007', '2012')
    ])
voc_test = dict(
    _delete_=True,
    type='VOCDataset',
    data_root=voc_data_root,
    ann_file='VOC2007/ImageSets/Main/test.txt',
    data_prefix=dict(sub_data_root='VOC2007/'),
    test_mode=True,
    backend_args=None)
voc_evaluator = dict(_delete_=True, type='VOCMetric', metric='mAP', eval_mode='11points')

voc_optim_wrapper = dict(optimizer=dict(lr=1e-4))
voc_train_cfg = dict(max_epochs=50)
# `_scope_` as on the mmdet Deformable DETR schedule this list replaces (the same scheduler)
voc_param_scheduler = [
    dict(type='MultiStepLR', begin=0, end=50, by_epoch=True, milestones=[40], gamma=0.1,
         _scope_='mmdet')
]
voc_auto_scale_lr = dict(base_batch_size=16)  # 8 GPUs x 2 images (the COCO siblings' batch_size)
