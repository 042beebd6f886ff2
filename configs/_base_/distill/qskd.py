# QSKD: matched prediction KD (normalised by the number of pairs) plus attention-guided feature
# KD, no hard-negative queries. Used as
#   model = dict(_base_.qskd, architecture=student, teacher=teacher, teacher_ckpt=...)
qskd = dict(
    _delete_=True,
    _scope_='mmrazor',
    type='QSKD',
    tprd=False,
    layer_by_layer=True,
    matcher=dict(cls_cost=1.0, l1_cost=5.0, giou_cost=2.0),
    hard_negative_giou=0.0,
    distiller=dict(
        type='ConfigurableDistiller',
        distill_losses=dict(
            loss_pred=dict(type='PairKDLoss', loss_cls_weight=1.0, loss_bbox_weight=5.0,
                           loss_iou_weight=2.0, normalizer='pairs'),
            loss_feat=dict(type='AttnGuidedFeatureLoss', loss_weight=100.0))))
