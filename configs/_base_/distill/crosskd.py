# CrossKD: the student's decoder states go through the teacher's heads; Hungarian logits KD on
# those cross-head predictions. Used as
#   model = dict(_base_.crosskd, architecture=student, teacher=teacher, teacher_ckpt=...)
crosskd = dict(
    _delete_=True,
    _scope_='mmrazor',
    type='CrossKD',
    matcher=dict(cls_cost=1.0, l1_cost=5.0, giou_cost=2.0),
    distiller=dict(
        type='ConfigurableDistiller',
        distill_losses=dict(
            loss_cross=dict(type='HungarianLogitKDLoss', loss_cls_weight=1.0,
                            loss_bbox_weight=5.0, loss_iou_weight=2.0))))
