"""IoU-aware BCE ("ice", as in Align-DETR) and DAC-DETR's rank weights."""
import math
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmdet.models.losses import QualityFocalLoss
from mmdet.models.losses.utils import weight_reduce_loss
from mmdet.registry import MODELS
from torch import Tensor


def rank_weights(scores: Tensor, group_inds: Tensor, tau: float = 1.5) -> Tensor:
    """``exp(-rank / tau)`` of each positive inside its group (its GT), ranked by ``scores``
    in descending order: 1, .51, .26, .14, .07, .04 for tau=1.5.

    Args:
        scores (Tensor): (P,) ranking score of each positive (IA-BCE target t in DAC-DETR).
        group_inds (Tensor): (P,) group (GT) id of each positive, any integers.
        tau (float): temperature. Defaults to 1.5.

    Returns:
        Tensor: (P,) weights, no gradient. Ties keep their input order.
    """
    if scores.shape != group_inds.shape or scores.dim() != 1:
        raise ValueError(f'rank_weights: scores and group_inds must both be (P,), got '
                         f'{tuple(scores.shape)} and {tuple(group_inds.shape)}')
    if tau <= 0:
        raise ValueError(f'rank_weights: tau must be > 0, got {tau}')
    num = scores.numel()
    if num == 0:
        return scores.new_zeros(0)
    scores = scores.detach()
    # sort by score (descending), then stably by group: each group is a run sorted by score
    order = torch.argsort(scores, descending=True, stable=True)
    order = order[torch.argsort(group_inds[order], stable=True)]
    sorted_groups = group_inds[order]
    new_group = torch.ones_like(sorted_groups, dtype=torch.bool)
    new_group[1:] = sorted_groups[1:] != sorted_groups[:-1]
    position = torch.arange(num, device=scores.device)
    group_start = torch.cummax(torch.where(new_group, position, 0), dim=0).values
    ranks = torch.empty_like(position)
    ranks[order] = position - group_start
    return torch.exp(-ranks.to(scores.dtype) / tau)


def ia_bce_soft_targets(pos_logits: Tensor, pos_ious: Tensor, alpha: float = 0.25,
                        min_target: float = 0.01) -> Tensor:
    """IA-BCE target of positive entries, ``t = p^alpha * IoU^(1 - alpha)``, clamped to
    ``>= min_target`` and detached. ``pos_logits`` and ``pos_ious`` are (P,)."""
    p = pos_logits.detach().float().sigmoid()
    iou = pos_ious.detach().float().clamp(min=0.0)
    return (p.pow(alpha) * iou.pow(1.0 - alpha)).clamp(min=min_target).to(pos_logits.dtype)


def ia_bce_loss(pred: Tensor, pos_rows: Tensor, pos_labels: Tensor, pos_targets: Tensor,
                gamma: float = 2.0) -> Tensor:
    """Element-wise IA-BCE, (N, C).

    Entry (pos_rows[i], pos_labels[i]) gets ``BCE(p, pos_targets[i])``; every other entry
    ``-p^gamma * log(1 - p)`` (``p^gamma`` not detached, no alpha). If a (row, label) entry
    is listed twice one of its targets is used.
    """
    if pos_rows.numel() == 0:
        return _ia_bce_masked(pred, None, None, gamma)
    pos_mask = torch.zeros_like(pred, dtype=torch.bool)
    pos_mask[pos_rows, pos_labels] = True
    target = torch.zeros_like(pred)
    target[pos_rows, pos_labels] = pos_targets.to(pred.dtype)
    return _ia_bce_masked(pred, pos_mask, target, gamma)


def _ia_bce_masked(pred: Tensor, pos_mask: Optional[Tensor], target: Optional[Tensor],
                   gamma: float) -> Tensor:
    """Element-wise IA-BCE from an (N, C) positive mask and target (None: no positives)."""
    neg = pred.sigmoid().pow(gamma) * F.binary_cross_entropy_with_logits(
        pred, torch.zeros_like(pred), reduction='none')
    if pos_mask is None:
        return neg
    pos = F.binary_cross_entropy_with_logits(pred, target, reduction='none')
    return torch.where(pos_mask, pos, neg)


@MODELS.register_module()
class IABCELoss(QualityFocalLoss):
    """IoU-aware BCE (Align-DETR, used by DAC-DETR "ice"): a positive (query, GT class) entry is
    trained towards the soft target ``t = w * max(p^alpha * IoU^(1-alpha), 0.01)`` (detached;
    ``w`` the rank weight, 1 by default) with BCE, every other entry with ``-p^gamma log(1-p)``.
    The sum is divided by ``avg_factor``.

    It subclasses :class:`QualityFocalLoss` only for the call convention: mmdet's DETR heads
    (``DETRHead.loss_by_feat_single``, ``DINOHead._loss_dn_single``) then pass
    ``target=(labels, ious)`` with the detached IoU of each positive, exactly what IA-BCE
    needs for the one-to-one and denoising terms.

    Shapes: ``pred`` (N, C) logits; ``target`` a tuple ``(labels (N,), ious (N,))`` or
    ``(labels, ious, rank_weights (N,))`` where label C means background; ``weight`` (N,) or
    (N, C) element weights. :meth:`loss_pairs` takes positive (row, label) pairs instead, so a
    row can be positive for two classes (one-to-many assignment).

    Args:
        alpha (float): exponent of p in the target. Defaults to 0.25.
        gamma (float): exponent of p on negative entries. Defaults to 2.0.
        min_target (float): lower clamp of the target before the rank weight. Defaults to 0.01.
        reduction (str): 'mean' (sum / avg_factor when given), 'sum' or 'none'.
        loss_weight (float): Defaults to 1.0.
    """

    def __init__(self,
                 alpha: float = 0.25,
                 gamma: float = 2.0,
                 min_target: float = 0.01,
                 use_sigmoid: bool = True,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0) -> None:
        if not use_sigmoid:
            raise ValueError('IABCELoss is a sigmoid loss: use_sigmoid must be True')
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f'IABCELoss: alpha must be in [0, 1], got {alpha}')
        super().__init__(use_sigmoid=True, beta=gamma, reduction=reduction,
                         loss_weight=loss_weight, activated=False)
        self.alpha = float(alpha)
        self.gamma = float(gamma)
        self.min_target = float(min_target)

    def soft_targets(self, pos_logits: Tensor, pos_ious: Tensor) -> Tensor:
        """Unweighted targets t of positives, see :func:`ia_bce_soft_targets`."""
        return ia_bce_soft_targets(pos_logits, pos_ious, self.alpha, self.min_target)

    def loss_pairs(self, pred: Tensor, pos_rows: Tensor, pos_labels: Tensor, pos_ious: Tensor,
                   rank_weights: Optional[Tensor] = None, weight: Optional[Tensor] = None,
                   avg_factor: Optional[float] = None,
                   reduction_override: Optional[str] = None) -> Tensor:
        """IA-BCE with positives given as (row, label) pairs, each with its IoU and rank
        weight; all shapes (P,)."""
        if pred.dim() != 2:
            raise ValueError(f'IABCELoss: pred must be (N, C) logits, got {tuple(pred.shape)}')
        if not (pos_rows.shape == pos_labels.shape == pos_ious.shape) or pos_rows.dim() != 1:
            raise ValueError('IABCELoss: pos_rows, pos_labels and pos_ious must all be (P,)')
        reduction = reduction_override if reduction_override else self.reduction
        pos_rows, pos_labels = pos_rows.long(), pos_labels.long()
        targets = self.soft_targets(pred[pos_rows, pos_labels], pos_ious)
        if rank_weights is not None:
            targets = targets * rank_weights.detach().to(targets.dtype)
        loss = ia_bce_loss(pred, pos_rows, pos_labels, targets, self.gamma)
        if weight is not None and weight.dim() == 1:
            weight = weight[:, None]
        return self.loss_weight * weight_reduce_loss(loss, weight, reduction, avg_factor)

    def forward(self, pred: Tensor, target: Union[Tuple[Tensor, ...], Sequence[Tensor]],
                weight: Optional[Tensor] = None, avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None) -> Tensor:
        if isinstance(target, Tensor) or len(target) not in (2, 3):
            raise ValueError('IABCELoss expects target=(labels, ious) or (labels, ious, '
                             'rank_weights), as mmdet passes it to a QualityFocalLoss')
        labels, ious = target[0], target[1]
        if pred.dim() != 2 or labels.shape != pred.shape[:1] or ious.shape != labels.shape:
            raise ValueError(f'IABCELoss: pred must be (N, C) and labels, ious (N,); got '
                             f'{tuple(pred.shape)}, {tuple(labels.shape)}, {tuple(ious.shape)}')
        # every row at once, positives selected by a mask: no nonzero (host sync) per call
        num_classes = pred.shape[-1]
        is_pos = (labels >= 0) & (labels < num_classes)
        cls = labels.long().clamp(0, num_classes - 1)[:, None]
        targets = self.soft_targets(pred.gather(1, cls).squeeze(1), ious)
        if len(target) == 3:
            targets = targets * target[2].detach().to(targets.dtype)
        pos_mask = torch.zeros_like(pred, dtype=torch.bool).scatter_(1, cls, is_pos[:, None])
        loss = _ia_bce_masked(pred, pos_mask, torch.where(pos_mask, targets[:, None], 0.0),
                              self.gamma)
        if weight is not None and weight.dim() == 1:
            weight = weight[:, None]
        reduction = reduction_override if reduction_override else self.reduction
        return self.loss_weight * weight_reduce_loss(loss, weight, reduction, avg_factor)


def rank_weight_table(num: int = 6, tau: float = 1.5) -> Tensor:
    """The first ``num`` rank weights ``exp(-r / tau)`` (for documentation and tests)."""
    return torch.tensor([math.exp(-r / tau) for r in range(num)])
