# QSKD: matched prediction KD (normalised by the number of pairs) plus attention-guided feature
# KD of the encoder memory (as the TPRD release), no hard-negative queries. Used as
#   model = dict(_base_.qskd, architecture=student, teacher=teacher, teacher_ckpt=...)
qskd = dict(
    _delete_=True,
    _scope_='mmrazor',
    type='QSKD',
    tprd=False,
    layer_by_layer=True,
    matcher=dict(cls_cost=1.0, l1_cost=5.0, giou_cost=2.0),
    hard_negative_giou=0.0,
    layer_pairing='release',  # 'same_layer': each layer's attention with its own selection
    distiller=dict(
        type='ConfigurableDistiller',
        distill_losses=dict(
            loss_pred=dict(type='PairKDLoss', loss_cls_weight=1.0, loss_bbox_weight=5.0,
                           loss_iou_weight=2.0, normalizer='pairs'),
            # encoder memory under the selected teacher queries' cross-attention
            loss_feat=dict(type='AttnGuidedFeatureLoss', loss_weight=100.0, splat='bilinear',
                           normalize='all_levels', features='memory'))))
