# Follows the DETRDistill release (BIVLab-USTC/DETRDistill), teacher boxes clamped.
# DETRDistill for Conditional DETR: R101 (teacher) -> R50 (student), 50 epochs, 8 GPUs x 2.
# Paper (via third-party slides, unverified): teacher 42.4, student 40.7 -> 42.9 AP.
#
#   bash tools/dist_train.sh configs/detectors/conditional-detr-mmdet_r101_8xb2-50e_coco.py 8
#   bash tools/dist_train.sh configs/detr_distill/<this file> 8
#   python tools/pth_transfer.py --ckpt_path work_dirs/<this>/epoch_50.pth --output_path r50.pth
#   bash tools/dist_test.sh mmdet::conditional_detr/conditional-detr_r50_8xb2-50e_coco.py r50.pth 8
_base_ = ['mmdet::conditional_detr/conditional-detr_r50_8xb2-50e_coco.py',
          '../_base_/distill/detr_distill.py']

teacher_ckpt = 'work_dirs/conditional-detr_r101_8xb2-50e_coco/epoch_50.pth'

student = dict(_base_.model, _scope_='mmdet')
teacher = dict(
    _base_.model,
    _scope_='mmdet',
    backbone=dict(_base_.model['backbone'], depth=101, init_cfg=None))

model = dict(
    _base_.detr_distill, architecture=student, teacher=teacher, teacher_ckpt=teacher_ckpt)

find_unused_parameters = True
custom_hooks = [dict(type='SyncBuffersHook')]
custom_imports = dict(imports=['mmdet_ksdetr'], allow_failed_imports=False)
