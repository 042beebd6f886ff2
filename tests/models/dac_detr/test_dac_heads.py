"""DAC heads: one-to-many C-stream losses on a hand-built layer (rank weights on the cls target
and the box terms, 3*#GT normaliser), the optional class-wise NMS, and config errors."""
import math

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy, bbox_overlaps
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

from mmdet_ksdetr.models.dac_detr.ia_bce_loss import IABCELoss

IMG = dict(img_shape=(100, 200), scale_factor=(1.0, 1.0))  # h, w


def _head(type_='DACDINOHead', loss_cls=None, **kwargs):
    init_default_scope('mmdet')
    cfg = dict(
        type=type_,
        num_classes=3,
        embed_dims=32,
        sync_cls_avg_factor=True,
        loss_cls=loss_cls or dict(type='IABCELoss', loss_weight=1.0),
        loss_bbox=dict(type='L1Loss', loss_weight=5.0),
        loss_iou=dict(type='GIoULoss', loss_weight=2.0),
        share_pred_layer=False,
        num_pred_layer=3,
        as_two_stage=True,
        train_cfg=dict(
            assigner=dict(type='HungarianAssigner', match_costs=[
                dict(type='FocalLossCost', weight=2.0),
                dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
                dict(type='IoUCost', iou_mode='giou', weight=2.0)]),
            o2m_assigner=dict(type='OneToManyAssigner')),
        test_cfg=dict(max_per_img=10))
    cfg.update(kwargs)
    return MODELS.build(cfg)


def _layer():
    """One image, one GT (class 1), three C-stream queries near it, one far away."""
    gt = InstanceData(bboxes=torch.tensor([[40., 20., 120., 80.]]), labels=torch.tensor([1]))
    # normalised cxcywh; GT = (0.4, 0.5, 0.4, 0.6)
    boxes = torch.tensor([[0.40, 0.50, 0.40, 0.60], [0.42, 0.50, 0.40, 0.55],
                          [0.45, 0.52, 0.34, 0.60], [0.90, 0.10, 0.05, 0.05]])
    logits = torch.full((4, 3), -4.0)
    logits[:3, 1] = torch.tensor([0.5, 1.5, -0.5])
    return gt, boxes, logits


def _expected(logits, boxes, gt, tau, scale):
    target = torch.tensor([0.4, 0.5, 0.4, 0.6])
    gt_xyxy = bbox_cxcywh_to_xyxy(target[None])
    ious = bbox_overlaps(bbox_cxcywh_to_xyxy(boxes[:3]), gt_xyxy).squeeze(1)
    p = logits[:3, 1].sigmoid()
    t = (p**0.25 * ious**0.75).clamp(min=0.01)
    order = torch.argsort(t, descending=True)
    w = torch.empty(3)
    w[order] = torch.exp(-torch.arange(3.0) / tau) if tau else torch.ones(3)
    n = scale * 1
    l1 = 5.0 * float(((boxes[:3] - target).abs().sum(1) * w).sum()) / n
    factor = torch.tensor([200., 100., 200., 100.])
    from mmdet.structures.bbox import bbox_overlaps as ov
    giou = ov(bbox_cxcywh_to_xyxy(boxes[:3]) * factor, gt.bboxes.expand(3, 4), mode='giou',
              is_aligned=True)
    gl = 2.0 * float(((1 - giou) * w).sum()) / n
    cls = 0.0
    for i in range(4):
        for c in range(3):
            q = float(logits[i, c].sigmoid())
            if i < 3 and c == 1:
                tt = float(t[i] * w[i])
                cls += -tt * math.log(q) - (1 - tt) * math.log(1 - q)
            else:
                cls += -(q**2) * math.log(1 - q)
    return cls / n, l1, gl


@pytest.mark.parametrize('tau', [1.5, None])
def test_o2m_losses_on_a_hand_built_layer(tau):
    head = _head(o2m_rank_tau=tau)
    gt, boxes, logits = _layer()
    # the assigner sees every near query as positive (M >= 0.4) and the far one as negative
    losses = head.loss_o2m_by_feat(logits[None, None], boxes[None, None], boxes[None, None],
                                   [gt], [IMG])
    cls, l1, gl = _expected(logits, boxes, gt, tau, scale=3.0)
    assert set(losses) == {'loss_cls_c', 'loss_bbox_c', 'loss_iou_c'}
    assert losses['loss_cls_c'].item() == pytest.approx(cls, rel=1e-5)
    assert losses['loss_bbox_c'].item() == pytest.approx(l1, rel=1e-5)
    assert losses['loss_iou_c'].item() == pytest.approx(gl, rel=1e-5)


def test_normaliser_is_scale_times_num_gt_and_match_boxes_are_used():
    gt, boxes, logits = _layer()
    two = dict(all_layers_cls_scores=logits[None, None].repeat(2, 1, 1, 1),
               all_layers_bbox_preds=boxes[None, None].repeat(2, 1, 1, 1),
               all_layers_match_bbox_preds=boxes[None, None].repeat(2, 1, 1, 1),
               batch_gt_instances=[gt], batch_img_metas=[IMG])
    l3 = _head(o2m_avg_factor_scale=3.0).loss_o2m_by_feat(**two)
    l1 = _head(o2m_avg_factor_scale=1.0).loss_o2m_by_feat(**two)
    assert set(l3) == {'loss_cls_c', 'loss_bbox_c', 'loss_iou_c', 'd0.loss_cls_c',
                       'd0.loss_bbox_c', 'd0.loss_iou_c'}
    for k in l3:
        assert l1[k].item() == pytest.approx(3 * l3[k].item(), rel=1e-5)
    # matching boxes far from the GT: only the GT's forced best query stays positive
    far = two.copy()
    far['all_layers_match_bbox_preds'] = torch.tensor([0.9, 0.9, 0.05, 0.05]).expand(2, 1, 4, 4)
    rows, *_ = _head().get_o2m_targets(logits[None], far['all_layers_match_bbox_preds'][0],
                                       [gt], [IMG])
    assert rows.numel() == 1


def test_focal_loss_variant_uses_one_hot_targets():
    head = _head(loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                               loss_weight=1.0))
    gt, boxes, logits = _layer()
    losses = head.loss_o2m_by_feat(logits[None, None], boxes[None, None], boxes[None, None],
                                   [gt], [IMG])
    onehot = torch.zeros(4, 3)
    onehot[:3, 1] = 1
    p = logits.sigmoid()
    focal = -(0.25 * onehot * (1 - p)**2 * p.log() + 0.75 * (1 - onehot) * p**2 * (1 - p).log())
    assert losses['loss_cls_c'].item() == pytest.approx(float(focal.sum()) / 3.0, rel=1e-5)


def test_class_wise_nms_in_test_cfg():
    head = _head(test_cfg=dict(max_per_img=10, nms=dict(type='nms', iou_threshold=0.8)))
    torch.manual_seed(0)
    base = torch.tensor([0.5, 0.5, 0.3, 0.3])
    boxes = (base + torch.randn(20, 4) * 0.002).clamp(0.05, 0.95)  # 20 near-duplicates
    logits = torch.randn(20, 3)
    res = head._predict_by_feat_single(logits, boxes, IMG, rescale=True)
    assert 1 <= len(res) <= 10
    for c in res.labels.unique():
        b = res.bboxes[res.labels == c]
        iou = bbox_overlaps(b, b)
        assert (iou.triu(1) <= 0.8 + 1e-6).all()
    assert res.labels.unique().numel() == len(res)  # one box per class survives
    assert torch.all(res.scores[:-1] >= res.scores[1:])
    stock = _head()._predict_by_feat_single(logits, boxes, IMG, rescale=True)
    assert len(stock) == 10  # off by default: DINO's top-k


def test_config_errors():
    with pytest.raises(ValueError, match='sigmoid'):
        _head(loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0,
                            class_weight=1.0))
    with pytest.raises(ValueError, match='o2m_rank_tau'):
        _head(o2m_rank_tau=0.0)
    assert isinstance(_head('DACDeformableDETRHead').loss_cls, IABCELoss)
    assert _head('DACDeformableDETRHead').enc_class_agnostic is True
    assert _head().enc_class_agnostic is False
