# D3ETR on the toy set: tiny Deformable DETR teacher and student (30 queries each: TPRD's D3ETR
# pairs every query), adaptive + fixed matching, predictions 1 / 5 / 2, self-attention 1e4,
# cross-attention 1e3. TPRD variant: d3etr-tprd_deformable-detr_tiny-r18_1xb2-12e_toy.py.
#
#   PORT=29641 bash tools/dist_train.sh \
#       configs/toy/d3etr/d3etr_deformable-detr_tiny-r18_1xb2-12e_toy.py 2
# Student config (tools/test.py with the tools/pth_transfer.py output):
#   configs/toy/deformable-detr_tiny-r18_1xb2-12e_toy.py
_base_ = ['../deformable-detr_tiny-r18_1xb2-12e_toy.py']

teacher_ckpt = 'work_dirs/deformable-detr_tiny-r18_1xb2-12e_toy/epoch_12.pth'

student = dict(_base_.model, _scope_='mmdet')
teacher = dict(_base_.model, _scope_='mmdet')


def _pair_loss(cls_weight):
    return dict(type='PairKDLoss', loss_cls_weight=cls_weight, loss_bbox_weight=5.0,
                loss_iou_weight=2.0, normalizer='queries')


model = dict(
    _delete_=True,
    _scope_='mmrazor',
    type='D3ETR',
    architecture=student,
    teacher=teacher,
    teacher_ckpt=teacher_ckpt,
    tprd=False,
    layer_by_layer=True,
    matcher=dict(cls_cost=1.0, l1_cost=5.0, giou_cost=2.0),
    distiller=dict(
        type='ConfigurableDistiller',
        distill_losses=dict(
            loss_adaptive=_pair_loss(1.0),
            loss_fixed=_pair_loss(1.0),
            loss_self_attn=dict(type='AttentionMapLoss', loss_weight=1e4),
            loss_cross_attn=dict(type='AttentionMapLoss', loss_weight=1e3))))

find_unused_parameters = True
