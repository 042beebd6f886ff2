# KD-DETR (TPRD release settings): the distiller that a KD-DETR config puts around its student
# and teacher. A config lists this file next to its detector config in `_base_` and writes
#   model = dict(_base_.kd_detr, architecture=student, teacher=teacher, teacher_ckpt=...)
# (mmengine forbids two bases that both set `model`, hence the name `kd_detr`).
# 300 random "general" + the teacher's "specific" distillation points, T = 10, weights
# 2 / 5 / 2 for both groups; student layer i learns from teacher layer i.
kd_detr = dict(
    _delete_=True,
    _scope_='mmrazor',
    type='KDDETR',
    tprd=False,
    layer_by_layer=True,
    num_general_queries=300,
    distiller=dict(
        type='ConfigurableDistiller',
        distill_losses=dict(
            loss_general=dict(type='KDDETRLoss', temperature=10.0, loss_cls_weight=2.0,
                              loss_bbox_weight=5.0, loss_iou_weight=2.0),
            loss_specific=dict(type='KDDETRLoss', temperature=10.0, loss_cls_weight=2.0,
                               loss_bbox_weight=5.0, loss_iou_weight=2.0))))

# the TPRD version (the "-tprd" configs): merged into a baseline's model
kd_detr_tprd = dict(tprd=True, layer_by_layer=True)  # release pairing, as in the baseline
