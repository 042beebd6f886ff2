"""Target-aware feature distillation (DETRDistill's TFD)."""
from typing import List, Sequence

import torch
import torch.nn.functional as F
from mmdet.structures.bbox import bbox_overlaps
from mmrazor.registry import MODELS
from torch import Tensor, nn

__all__ = ['TargetAwareFeatLoss', 'target_aware_masks']


def _quality_weights(scores: Tensor, boxes: Tensor, gt_bboxes: List[Tensor]) -> Tensor:
    """w_k = s_k * max_g IoU(box_k, g) for (B, K) scores and (B, K, 4) pixel boxes; s_k for an
    image without GT. GTs are padded into one tensor so this is a single batched IoU."""
    B, K = scores.shape
    max_gt = max((len(g) for g in gt_bboxes), default=0)
    if max_gt == 0:
        return scores
    gts = boxes.new_zeros(B, max_gt, 4)
    valid = torch.zeros(B, max_gt, dtype=torch.bool, device=boxes.device)
    for b, g in enumerate(gt_bboxes):
        gts[b, :len(g)] = g.to(boxes.dtype)
        valid[b, :len(g)] = True
    ious = bbox_overlaps(boxes, gts)  # (B, K, G)
    ious = ious.masked_fill(~valid[:, None, :], 0).amax(-1)
    has_gt = valid.any(-1, keepdim=True)
    return torch.where(has_gt, scores * ious, scores)


@torch.no_grad()
def target_aware_masks(teacher_feats: Sequence[Tensor], teacher_queries: Tensor,
                       teacher_scores: Tensor, teacher_boxes_xyxy: Tensor,
                       gt_bboxes: List[Tensor], topk: int = 100,
                       min_value: float = 0.01) -> List[Tensor]:
    """Per-level masks A_m (B, H_m, W_m) of DETRDistill's feature loss.

    Top-``topk`` entries of the flattened (N x C) teacher scores pick queries n_k (a query may
    appear for several classes) with weights w_k = s_k * max IoU(teacher box, GT). Then
    ``A(x, y) = max(sum_k w_k <q_k, f(x, y)>, min_value) / max_xy(...)`` with q_k and f the
    L2-normalised teacher query and teacher feature. Because the sum is linear, it is computed
    as one weighted query vector per image dotted with the feature map (no K x H x W tensor).

    Several decoder layers at once: ``teacher_queries`` (L, B, N, D), ``teacher_scores``
    (L, B, N, C) and ``teacher_boxes_xyxy`` (L, B, N, 4) give masks (L, B, H_m, W_m).
    """
    layered = teacher_queries.dim() == 4
    if not layered:
        teacher_queries, teacher_scores, teacher_boxes_xyxy = (
            teacher_queries[None], teacher_scores[None], teacher_boxes_xyxy[None])
    L, B, N, C = teacher_scores.shape
    k = min(topk, N * C)
    scores, flat_idx = teacher_scores.reshape(L * B, N * C).topk(k, dim=1)
    query_idx = torch.div(flat_idx, C, rounding_mode='floor')
    boxes = teacher_boxes_xyxy.reshape(L * B, N, 4).gather(
        1, query_idx[..., None].expand(-1, -1, 4))
    weights = _quality_weights(scores, boxes, list(gt_bboxes) * L)  # (L * B, K)
    queries = F.normalize(teacher_queries.reshape(L * B, N, -1), dim=-1)
    queries = queries.gather(1, query_idx[..., None].expand(-1, -1, queries.shape[-1]))
    direction = (weights[..., None] * queries).sum(1).reshape(L, B, -1)  # (L, B, D)
    masks = []
    for feat in teacher_feats:
        if feat.shape[1] != direction.shape[-1]:
            raise ValueError(f'TargetAwareFeatLoss: teacher features have {feat.shape[1]} '
                             f'channels but decoder queries {direction.shape[-1]}')
        sim = torch.einsum('lbd,bdhw->lbhw', direction, F.normalize(feat, dim=1))
        sim = sim.clamp(min=min_value)
        mask = sim / sim.flatten(2).amax(2)[..., None, None]
        masks.append(mask if layered else mask[0])
    return masks


@MODELS.register_module()
class TargetAwareFeatLoss(nn.Module):
    """Target-aware feature distillation (DETRDistill): the teacher's most confident decoder
    queries, weighted by score x IoU with the GT, say where on the neck features the student
    must imitate the teacher; the loss is a masked MSE, summed over levels.

    Shapes: ``student_feats`` / ``teacher_feats`` sequences of (B, D, H_m, W_m) (same count,
    channels and sizes), ``teacher_queries`` (B, N, D) decoder hidden states of one teacher
    layer, ``teacher_scores`` (B, N, C) probabilities, ``teacher_boxes_xyxy`` (B, N, 4) pixel
    boxes (unclamped), ``gt_bboxes`` list of (G_b, 4) pixel boxes. The mask and the teacher
    features carry no gradient; padded pixels are included (as in the release).
    :meth:`forward_layers` takes the teacher tensors of L layers, (L, B, N, ...), and returns
    the L losses at the cost of about one.

    Args:
        loss_weight: weight of the loss (release: 1).
        topk: number of (query, class) entries that build the mask (release: 100).
        min_value: floor of the unnormalised mask (release: 0.01).
    """

    def __init__(self, loss_weight: float = 1.0, topk: int = 100, min_value: float = 0.01):
        super().__init__()
        if topk < 1:
            raise ValueError(f'TargetAwareFeatLoss: topk must be >= 1, got {topk}')
        self.loss_weight = loss_weight
        self.topk = topk
        self.min_value = min_value

    def forward(self, student_feats: Sequence[Tensor], teacher_feats: Sequence[Tensor],
                teacher_queries: Tensor, teacher_scores: Tensor, teacher_boxes_xyxy: Tensor,
                gt_bboxes: List[Tensor]) -> Tensor:
        return self.forward_layers(student_feats, teacher_feats, teacher_queries[None],
                                   teacher_scores[None], teacher_boxes_xyxy[None],
                                   gt_bboxes)[0]

    def forward_layers(self, student_feats: Sequence[Tensor], teacher_feats: Sequence[Tensor],
                       teacher_queries: Tensor, teacher_scores: Tensor,
                       teacher_boxes_xyxy: Tensor, gt_bboxes: List[Tensor]) -> Tensor:
        """(L,) losses, one per teacher layer of the (L, B, N, ...) teacher tensors.

        ``mean((A * (t - s))^2) = sum_xy A^2 * sum_c (t - s)^2 / (B C H W)``, so the squared
        feature difference is computed once per level and weighted by each layer's mask."""
        if len(student_feats) != len(teacher_feats):
            raise ValueError(f'TargetAwareFeatLoss: student has {len(student_feats)} neck '
                             f'levels, teacher {len(teacher_feats)}; use necks with the same '
                             f'num_outs')
        for s, t in zip(student_feats, teacher_feats):
            if s.shape != t.shape:
                raise ValueError(f'TargetAwareFeatLoss: student neck feature {tuple(s.shape)} '
                                 f'!= teacher {tuple(t.shape)}; both necks must output the '
                                 f'same channels (e.g. ChannelMapper out_channels=256)')
        masks = target_aware_masks(teacher_feats, teacher_queries.detach(),
                                   teacher_scores.detach(), teacher_boxes_xyxy.detach(),
                                   gt_bboxes, self.topk, self.min_value)
        loss = student_feats[0].new_zeros(teacher_queries.shape[0])
        for mask, s, t in zip(masks, student_feats, teacher_feats):
            sq_diff = (t.detach() - s).square().sum(1)  # (B, H, W)
            loss = loss + (mask.square() * sq_diff).flatten(1).sum(1) / s.numel()
        return self.loss_weight * loss
