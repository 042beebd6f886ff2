"""Prediction distillation over given student/teacher query pairs (D3ETR, QSKD;
optionally with TPRD's decoupled class loss)."""
from typing import Optional

import torch.nn.functional as F
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy, bbox_overlaps
from mmrazor.registry import MODELS
from torch import Tensor, nn

from mmdet_ksdetr.distill.tprd.decoupled_kd_loss import decoupled_kd_loss

__all__ = ['PairKDLoss']

_NORMS = ('queries', 'pairs')


@MODELS.register_module()
class PairKDLoss(nn.Module):
    """Class and box distillation of already paired student and teacher predictions.

    Class term per pair: soft-label BCE ``sum_c BCE(z_s, sigmoid(z_t))`` (baseline D3ETR /
    QSKD), or — when ``pos_labels`` is given (TPRD) — the decoupled loss
    (:func:`~mmdet_ksdetr.distill.tprd.decoupled_kd_loss.decoupled_kd_loss`, softmax, T = 1).
    Box terms per pair: L1 summed over the 4 normalised cxcywh coordinates and ``1 - GIoU``
    (pixel xyxy).

    Normalisation (``normalizer``): ``'queries'`` divides every sum by ``num_queries`` (the
    caller passes B * Q: D3ETR, TPRD's B·Q), ``'pairs'`` by the number of pairs (QSKD).

    Shapes: paired predictions as flat ``(P, C)`` logits and ``(P, 4)`` boxes, ``(P, 4)`` image
    size factors ``[w, h, w, h]`` and ``(P,)`` ``pos_labels`` (-1 for non-positives).
    Returns ``dict(loss_cls, loss_bbox, loss_iou)``, weighted.
    """

    def __init__(self, loss_cls_weight: float = 1.0, loss_bbox_weight: float = 5.0,
                 loss_iou_weight: float = 2.0, normalizer: str = 'queries', eps: float = 1e-6):
        super().__init__()
        if normalizer not in _NORMS:
            raise ValueError(f'PairKDLoss: normalizer must be one of {_NORMS}, got '
                             f'{normalizer!r}')
        self.loss_cls_weight = loss_cls_weight
        self.loss_bbox_weight = loss_bbox_weight
        self.loss_iou_weight = loss_iou_weight
        self.normalizer = normalizer
        self.eps = eps

    def forward(self, student_logits: Tensor, student_boxes: Tensor, teacher_logits: Tensor,
                teacher_boxes: Tensor, img_size_factors: Tensor,
                pos_labels: Optional[Tensor] = None,
                num_queries: Optional[int] = None) -> dict:
        P = student_logits.shape[0]
        if teacher_logits.shape != student_logits.shape or \
                student_boxes.shape != (P, 4) or teacher_boxes.shape != (P, 4):
            raise ValueError(f'PairKDLoss: expected paired (P, C) logits and (P, 4) boxes, got '
                             f'{tuple(student_logits.shape)}, {tuple(teacher_logits.shape)}, '
                             f'{tuple(student_boxes.shape)}, {tuple(teacher_boxes.shape)}')
        if self.normalizer == 'queries':
            if num_queries is None:
                raise ValueError('PairKDLoss(normalizer="queries") needs num_queries (B * Q)')
            denom = float(max(num_queries, 1))
        else:
            denom = float(max(P, 1))
        if P == 0:
            zero = student_logits.sum() * 0.0
            return dict(loss_cls=zero, loss_bbox=zero, loss_iou=zero)
        t_logits = teacher_logits.detach().float()
        if pos_labels is None:
            cls = F.binary_cross_entropy_with_logits(
                student_logits.float(), t_logits.sigmoid(), reduction='none').sum(-1)
        else:
            cls = decoupled_kd_loss(student_logits, t_logits, pos_labels)
        s_boxes, t_boxes = student_boxes.float(), teacher_boxes.detach().float()
        l1 = (s_boxes - t_boxes).abs().sum(-1)
        f = img_size_factors.float()
        giou = bbox_overlaps(bbox_cxcywh_to_xyxy(s_boxes) * f, bbox_cxcywh_to_xyxy(t_boxes) * f,
                             mode='giou', is_aligned=True, eps=self.eps)
        return dict(loss_cls=self.loss_cls_weight * cls.sum() / denom,
                    loss_bbox=self.loss_bbox_weight * l1.sum() / denom,
                    loss_iou=self.loss_iou_weight * (1 - giou).sum() / denom)
