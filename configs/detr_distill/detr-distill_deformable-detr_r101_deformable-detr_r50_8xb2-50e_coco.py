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
_base_ = 'mmdet::deformable_detr/deformable-detr_r50_16xb2-50e_coco.py'

teacher_ckpt = 'work_dirs/deformable-detr_r101_16xb2-50e_coco/epoch_50.pth'

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
    clamp_teacher_boxes=True,  # the DETRDistill release clamps teacher boxes to the image
    layer_by_layer=True,  # "LayerbyLayer": student layer l learns from teacher layer l
    matcher=dict(cls_cost=1.0, l1_cost=5.0, giou_cost=2.0),
    distiller=dict(
        type='ConfigurableDistiller',
        distill_losses=dict(
            loss_logits_kd=dict(type='HungarianLogitKDLoss', loss_cls_weight=1.0,
                                loss_bbox_weight=5.0, loss_iou_weight=2.0),
            loss_feat_kd=dict(type='TargetAwareFeatLoss', loss_weight=1.0, topk=100),
            # "teachergroup"; assignment='teacher' follows the paper instead of the release
            loss_teacher_group=dict(type='TeacherGroupLoss', assignment='rematch',
                                    loss_weight=1.0),
            # "CL"
            loss_cl_kd=dict(type='QueryContrastLoss', in_channels=256, proj_channels=512,
                            temperature=0.07, loss_weight=0.2))))

# the release inherited a 500-iteration linear warm-up (ratio 0.001) from its 2x schedule
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=50, by_epoch=True, milestones=[40], gamma=0.1)
]
# student validation; for teacher metrics too (twice the cost):
# val_cfg = dict(_delete_=True, type='mmrazor.SingleTeacherDistillValLoop')
find_unused_parameters = True
# average BN running stats over the processes at each epoch end, so the saved checkpoint and the
# validation of every rank use the same student (mmdet's default hooks do not)
custom_hooks = [dict(type='SyncBuffersHook')]
custom_imports = dict(imports=['mmdet_ksdetr'], allow_failed_imports=False)
