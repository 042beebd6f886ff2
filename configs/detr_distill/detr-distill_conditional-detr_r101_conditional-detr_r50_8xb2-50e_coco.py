# Follows the DETRDistill release (BIVLab-USTC/DETRDistill), teacher boxes clamped.
# DETRDistill for Conditional DETR: R101 (teacher) -> R50 (student), 50 epochs, 8 GPUs x 2.
# Paper (via third-party slides, unverified): teacher 42.4, student 40.7 -> 42.9 AP.
#
#   bash tools/dist_train.sh configs/detectors/conditional-detr_r101_8xb2-50e_coco.py 8
#   bash tools/dist_train.sh configs/detr_distill/<this file> 8
#   python tools/pth_transfer.py --ckpt_path work_dirs/<this>/epoch_50.pth --output_path r50.pth
#   bash tools/dist_test.sh mmdet::conditional_detr/conditional-detr_r50_8xb2-50e_coco.py r50.pth 8
_base_ = 'mmdet::conditional_detr/conditional-detr_r50_8xb2-50e_coco.py'

teacher_ckpt = 'work_dirs/conditional-detr_r101_8xb2-50e_coco/epoch_50.pth'

student = dict(_base_.model, _scope_='mmdet')
teacher = dict(
    _base_.model,
    _scope_='mmdet',
    backbone=dict(_base_.model['backbone'], depth=101, init_cfg=None))

model = dict(
    _delete_=True,
    _scope_='mmrazor',
    type='DETRDistill',
    architecture=student,
    teacher=teacher,
    teacher_ckpt=teacher_ckpt,
    layer_by_layer=True,
    clamp_teacher_boxes=True,  # the DETRDistill release clamps teacher boxes to the image
    matcher=dict(cls_cost=1.0, l1_cost=5.0, giou_cost=2.0),
    distiller=dict(
        type='ConfigurableDistiller',
        distill_losses=dict(
            loss_logits_kd=dict(type='HungarianLogitKDLoss', loss_cls_weight=1.0,
                                loss_bbox_weight=5.0, loss_iou_weight=2.0),
            loss_feat_kd=dict(type='TargetAwareFeatLoss', loss_weight=1.0, topk=100),
            loss_teacher_group=dict(type='TeacherGroupLoss', assignment='rematch',
                                    loss_weight=1.0),
            loss_cl_kd=dict(type='QueryContrastLoss', in_channels=256, proj_channels=512,
                            temperature=0.07, loss_weight=0.2))))

find_unused_parameters = True
# average BN running stats over the processes at each epoch end, so the saved checkpoint and the
# validation of every rank use the same student (mmdet's default hooks do not)
custom_hooks = [dict(type='SyncBuffersHook')]
custom_imports = dict(imports=['mmdet_ksdetr'], allow_failed_imports=False)
