"""Hungarian-matching logits distillation (DETRDistill's HMLD)."""
import torch.nn.functional as F
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy, bbox_overlaps
from mmdet.utils import reduce_mean
from mmrazor.registry import MODELS
from torch import Tensor, nn

__all__ = ['HungarianLogitKDLoss', 'gather_queries']


def gather_queries(x: Tensor, idx: Tensor) -> Tensor:
    """``x[b, idx[b, m]]`` for x (B, N, ...) and idx (B, M) -> (B, M, ...)."""
    index = idx.view(idx.shape + (1, ) * (x.dim() - 2)).expand(*idx.shape, *x.shape[2:])
    return x.gather(1, index)


@MODELS.register_module()
class HungarianLogitKDLoss(nn.Module):
    """Logits distillation after a one-to-one Hungarian matching of student queries to teacher
    predictions (DETRDistill). Each student query learns the sigmoid class probabilities
    (soft-label BCE, no temperature) and the box (L1 + GIoU) of the teacher prediction it was
    matched to; unmatched student queries (only when N_s > N_t) learn background (p = 0).

    Shapes: student logits (B, Ns, C), student boxes (B, Ns, 4), teacher probabilities
    (B, Nt, C), teacher boxes (B, Nt, 4) (boxes normalised cxcywh), matches ``student_idx`` /
    ``teacher_idx`` (B, M) from :class:`DistillHungarianMatcher`, ``img_size_factors`` (B, 4).

    Normalisation follows the release: the class loss is divided by the local B * Ns, the box
    losses by the number of matched pairs averaged over GPUs (clamped to >= 1).

    Returns ``dict(loss_cls_kd, loss_bbox_kd, loss_iou_kd)``, already weighted.
    """

    def __init__(self, loss_cls_weight: float = 1.0, loss_bbox_weight: float = 5.0,
                 loss_iou_weight: float = 2.0, eps: float = 1e-6):
        super().__init__()
        self.loss_cls_weight = loss_cls_weight
        self.loss_bbox_weight = loss_bbox_weight
        self.loss_iou_weight = loss_iou_weight
        self.eps = eps

    def forward(self, student_logits: Tensor, student_boxes: Tensor, teacher_probs: Tensor,
                teacher_boxes: Tensor, student_idx: Tensor, teacher_idx: Tensor,
                img_size_factors: Tensor) -> dict:
        B, Ns, C = student_logits.shape
        if teacher_probs.shape[-1] != C:
            raise ValueError(f'HungarianLogitKDLoss: student has {C} classes, teacher '
                             f'{teacher_probs.shape[-1]}')
        targets = student_logits.new_zeros(B, Ns, C)
        matched_probs = gather_queries(teacher_probs.to(targets.dtype), teacher_idx)
        targets.scatter_(1, student_idx.unsqueeze(-1).expand(-1, -1, C), matched_probs)
        loss_cls = F.binary_cross_entropy_with_logits(
            student_logits, targets, reduction='sum') / max(B * Ns, 1)

        s_boxes = gather_queries(student_boxes, student_idx)
        t_boxes = gather_queries(teacher_boxes.to(s_boxes.dtype), teacher_idx)
        num_pairs = reduce_mean(s_boxes.new_tensor(float(student_idx.numel())))
        num_pairs = num_pairs.clamp(min=1.0)
        loss_bbox = (s_boxes - t_boxes).abs().sum() / num_pairs
        factors = img_size_factors[:, None, :].to(s_boxes.dtype)
        giou = bbox_overlaps(bbox_cxcywh_to_xyxy(s_boxes) * factors,
                             bbox_cxcywh_to_xyxy(t_boxes) * factors,
                             mode='giou', is_aligned=True, eps=self.eps)
        loss_iou = (1 - giou).sum() / num_pairs
        return dict(loss_cls_kd=self.loss_cls_weight * loss_cls,
                    loss_bbox_kd=self.loss_bbox_weight * loss_bbox,
                    loss_iou_kd=self.loss_iou_weight * loss_iou)
