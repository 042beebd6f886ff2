# DETRDistill (LayerbyLayer_CL_teachergroup) on the toy set: a briefly trained tiny Deformable
# DETR teacher (configs/toy/deformable-detr_tiny-r18_1xb2-12e_toy.py) distils into a tiny
# Deformable DETR student with fewer queries (20 vs 30). CPU-sized; used by the tests.
#
#   python tools/train.py configs/toy/deformable-detr_tiny-r18_1xb2-12e_toy.py   # teacher
#   bash tools/dist_train.sh \
#       configs/toy/detr_distill/detr-distill_deformable-detr_tiny-r18_1xb2-12e_toy.py 2 \
#       --cfg-options model.teacher_ckpt=work_dirs/deformable-detr_tiny-r18_1xb2-12e_toy/epoch_12.pth
# Student config (tools/test.py with the tools/pth_transfer.py output):
#   configs/toy/deformable-detr_tiny-r18-student_1xb2-12e_toy.py
# Teacher, student (20 queries) and teacher_ckpt: those of the KD-DETR toy config.
_base_ = ['../kd_detr/kd-detr_deformable-detr_tiny-r18_1xb2-12e_toy.py']

model = dict(
    _delete_=True,
    _scope_='mmrazor',
    type='DETRDistill',
    architecture=_base_.student,
    teacher=_base_.teacher,
    teacher_ckpt=_base_.teacher_ckpt,
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
