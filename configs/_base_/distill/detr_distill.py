# DETRDistill (release settings): Hungarian logits KD, target-aware feature KD, teacher-group
# (query prior) KD with re-matching, layer-by-layer and the query contrast (CL) loss; teacher
# boxes clamped to the image as in the release. Used as
#   model = dict(_base_.detr_distill, architecture=student, teacher=teacher, teacher_ckpt=...)
detr_distill = dict(
    _delete_=True,
    _scope_='mmrazor',
    type='DETRDistill',
    layer_by_layer=True,
    clamp_teacher_boxes=True,
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

# the TPRD version (the "-tprd" configs): merged into a detr-distill-nocl model
detr_distill_tprd = dict(
    tprd=True,
    clamp_teacher_boxes=False,  # the TPRD release never clamps teacher boxes
    distiller=dict(distill_losses=dict(loss_logits_kd=dict(loss_cls_weight=4.0))))
