# D3ETR: adaptive and fixed decoder-pair KD (class / L1 / GIoU, normalised by the number of
# queries) plus self- and cross-attention map KD. Used as
#   model = dict(_base_.d3etr, architecture=student, teacher=teacher, teacher_ckpt=...)
d3etr = dict(
    _delete_=True,
    _scope_='mmrazor',
    type='D3ETR',
    tprd=False,
    layer_by_layer=True,
    matcher=dict(cls_cost=1.0, l1_cost=5.0, giou_cost=2.0),
    distiller=dict(
        type='ConfigurableDistiller',
        distill_losses=dict(
            loss_adaptive=dict(type='PairKDLoss', loss_cls_weight=1.0, loss_bbox_weight=5.0,
                               loss_iou_weight=2.0, normalizer='queries'),
            loss_fixed=dict(type='PairKDLoss', loss_cls_weight=1.0, loss_bbox_weight=5.0,
                            loss_iou_weight=2.0, normalizer='queries'),
            loss_self_attn=dict(type='AttentionMapLoss', loss_weight=1e4),
            loss_cross_attn=dict(type='AttentionMapLoss', loss_weight=1e3))))

# the TPRD version (the "-tprd" configs): merged into a baseline's model; TPRD's class weight 3
d3etr_tprd = dict(
    tprd=True,
    distiller=dict(
        distill_losses=dict(
            loss_adaptive=dict(loss_cls_weight=3.0), loss_fixed=dict(loss_cls_weight=3.0))))
