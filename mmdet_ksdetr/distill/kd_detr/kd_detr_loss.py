"""KD-DETR's loss on index-aligned distillation points (optionally
against TPRD-refined teacher predictions)."""
from typing import Optional

import torch
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy, bbox_overlaps
from mmrazor.registry import MODELS
from torch import Tensor, nn

from mmdet_ksdetr.distill.tprd.decoupled_kd_loss import decoupled_kd_loss, kd_kl_loss

__all__ = ['KDDETRLoss']


@MODELS.register_module()
class KDDETRLoss(nn.Module):
    """Distillation of index-aligned query predictions (KD-DETR "distillation points": the
    same queries decoded by student and teacher, so query i of one corresponds to query i of
    the other and no matching is needed).

    Per pair: class loss ``T^2 * KL(softmax(z_t / T) || softmax(z_s / T))`` (T = 10), or, when
    ``pos_labels`` is given (TPRD), the decoupled loss at ``decoupled_temperature`` (1);
    box loss L1 summed over the 4 normalised cxcywh coordinates and ``1 - GIoU`` (pixel xyxy).
    Foreground re-weighting: pair weight ``w_i = sigmoid(max_c z_t[i, c])`` (detached),
    normalised to sum 1 per image; every term is the weighted sum per image, averaged over the
    images (TPRD's KD-DETR normalisation).

    Shapes: logits (B, N, C), boxes (B, N, 4), ``img_size_factors`` (B, 4) = [w, h, w, h],
    ``pos_labels`` (B, N) long, -1 for non-positives.

    Returns ``dict(loss_cls, loss_bbox, loss_iou)`` already multiplied by their weights.
    """

    def __init__(self,
                 temperature: float = 10.0,
                 decoupled_temperature: float = 1.0,
                 loss_cls_weight: float = 1.0,
                 loss_bbox_weight: float = 5.0,
                 loss_iou_weight: float = 2.0,
                 reweight: bool = True,
                 eps: float = 1e-6):
        super().__init__()
        if temperature <= 0 or decoupled_temperature <= 0:
            raise ValueError('KDDETRLoss: temperatures must be > 0')
        self.temperature = temperature
        self.decoupled_temperature = decoupled_temperature
        self.loss_cls_weight = loss_cls_weight
        self.loss_bbox_weight = loss_bbox_weight
        self.loss_iou_weight = loss_iou_weight
        self.reweight = reweight
        self.eps = eps

    def pair_weights(self, teacher_logits: Tensor) -> Tensor:
        """(B, N) foreground weights normalised to sum 1 per image."""
        if self.reweight:
            w = teacher_logits.detach().float().max(-1).values.sigmoid()
        else:
            w = teacher_logits.new_ones(teacher_logits.shape[:-1], dtype=torch.float32)
        return w / w.sum(-1, keepdim=True).clamp(min=self.eps)

    def forward(self, student_logits: Tensor, student_boxes: Tensor, teacher_logits: Tensor,
                teacher_boxes: Tensor, img_size_factors: Tensor,
                pos_labels: Optional[Tensor] = None) -> dict:
        if student_logits.shape != teacher_logits.shape or \
                student_boxes.shape != teacher_boxes.shape:
            raise ValueError(f'KDDETRLoss: student and teacher predictions must be index-'
                             f'aligned with equal shapes, got logits '
                             f'{tuple(student_logits.shape)} / {tuple(teacher_logits.shape)}, '
                             f'boxes {tuple(student_boxes.shape)} / '
                             f'{tuple(teacher_boxes.shape)}')
        B = student_logits.shape[0]
        w = self.pair_weights(teacher_logits)
        if pos_labels is None:
            cls = kd_kl_loss(student_logits, teacher_logits, self.temperature)
        else:
            cls = decoupled_kd_loss(student_logits, teacher_logits, pos_labels,
                                    self.decoupled_temperature)
        s_boxes, t_boxes = student_boxes.float(), teacher_boxes.detach().float()
        l1 = (s_boxes - t_boxes).abs().sum(-1)
        factors = img_size_factors[:, None, :].float()
        giou = bbox_overlaps(bbox_cxcywh_to_xyxy(s_boxes) * factors,
                             bbox_cxcywh_to_xyxy(t_boxes) * factors, mode='giou',
                             is_aligned=True, eps=self.eps)

        def reduce(x):
            return (w * x).sum() / max(B, 1)

        return dict(loss_cls=self.loss_cls_weight * reduce(cls),
                    loss_bbox=self.loss_bbox_weight * reduce(l1),
                    loss_iou=self.loss_iou_weight * reduce(1 - giou))
