# Follows the DETRDistill release (BIVLab-USTC/DETRDistill), teacher boxes clamped.
# DETRDistill, release setting "LayerbyLayer_CL_teachergroup": Deformable DETR R101 (teacher)
# -> Deformable DETR R50 (student), 50 epochs, 8 GPUs x 2 images (see docs/detr_distill.md).
# Release: teacher 44.8 AP, student 44.1 -> 46.6 AP (COCO val2017; not reproduced here).
#
#   bash tools/dist_train.sh configs/detectors/deformable-detr_r101_16xb2-50e_coco.py 8
#   bash tools/dist_train.sh configs/detr_distill/<this file> 8 \
#       --cfg-options model.teacher_ckpt=work_dirs/deformable-detr_r101_16xb2-50e_coco/epoch_50.pth
#   python tools/pth_transfer.py --ckpt_path work_dirs/<this>/epoch_50.pth --output_path r50.pth
#   bash tools/dist_test.sh mmdet::deformable_detr/deformable-detr_r50_16xb2-50e_coco.py r50.pth 8
_base_ = ['mmdet::deformable_detr/deformable-detr_r50_16xb2-50e_coco.py',
          '../_base_/distill/detr_distill.py']

teacher_ckpt = 'work_dirs/deformable-detr_r101_16xb2-50e_coco/epoch_50.pth'

student = dict(_base_.model, _scope_='mmdet')
teacher = dict(
    _base_.model,
    _scope_='mmdet',
    backbone=dict(_base_.model['backbone'], depth=101, init_cfg=None))

model = dict(
    _base_.detr_distill, architecture=student, teacher=teacher, teacher_ckpt=teacher_ckpt)

param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=50, by_epoch=True, milestones=[40], gamma=0.1)
]
find_unused_parameters = True
custom_hooks = [dict(type='SyncBuffersHook')]
custom_imports = dict(imports=['mmdet_ksdetr'], allow_failed_imports=False)
