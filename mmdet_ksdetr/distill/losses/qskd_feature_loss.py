"""QSKD's attention-guided feature distillation (AGFD; spec ``detr-distill.md`` §4)."""
from typing import Sequence

import torch
from mmrazor.registry import MODELS
from torch import Tensor, nn

from ..attention_recorder import splat_attention

__all__ = ['AttnGuidedFeatureLoss']


@MODELS.register_module()
class AttnGuidedFeatureLoss(nn.Module):
    """Attention-guided feature distillation: neck features are compared only where the
    teacher's *selected* decoder queries (positives and hard negatives) look.

    The mask of each neck level is ``mean_k (1 + GIoU_k) * A_k`` over the selected teacher
    queries ``k``, where ``A_k`` is query k's deformable cross-attention scattered onto the
    level's grid (:func:`~mmdet_ksdetr.distill.attention_recorder.splat_attention`), divided by
    its per-image maximum. Loss: ``sum_levels mean((mask * F_s - mask * F_t)^2)``.

    Shapes: student / teacher features, a list of (B, D, h_l, w_l) with equal shapes; teacher
    cross-attention weights (B, Q, H, Lv, P) and locations (B, Q, H, Lv, P, 2);
    ``spatial_shapes`` (Lv, 2); ``query_weights`` (B, Q) = ``1 + GIoU`` for selected queries
    and 0 for the others.
    """

    def __init__(self, loss_weight: float = 100.0, eps: float = 1e-12):
        super().__init__()
        self.loss_weight = loss_weight
        self.eps = eps

    @torch.no_grad()
    def masks(self, weights: Tensor, locations: Tensor, spatial_shapes: Tensor,
              query_weights: Tensor):
        count = (query_weights > 0).sum(1).clamp(min=1).to(weights.dtype)
        maps = splat_attention(weights.detach(), locations.detach(), spatial_shapes,
                               query_weights / count[:, None])
        out = []
        for m in maps:
            peak = m.flatten(1).max(1).values.clamp(min=self.eps)
            out.append(m / peak[:, None, None])
        return out

    def forward(self, student_feats: Sequence[Tensor], teacher_feats: Sequence[Tensor],
                weights: Tensor, locations: Tensor, spatial_shapes: Tensor,
                query_weights: Tensor) -> Tensor:
        if len(student_feats) != len(teacher_feats) or any(
                s.shape != t.shape for s, t in zip(student_feats, teacher_feats)):
            raise ValueError(f'AttnGuidedFeatureLoss: student and teacher neck features must '
                             f'have equal shapes (e.g. ChannelMapper to 256 channels), got '
                             f'{[tuple(s.shape) for s in student_feats]} vs '
                             f'{[tuple(t.shape) for t in teacher_feats]}')
        masks = self.masks(weights, locations, spatial_shapes, query_weights)
        if len(masks) != len(student_feats) or any(
                m.shape[-2:] != f.shape[-2:] for m, f in zip(masks, student_feats)):
            raise ValueError('AttnGuidedFeatureLoss: the cross-attention levels do not match '
                             'the neck feature maps')
        loss = student_feats[0].new_zeros(())
        for m, fs, ft in zip(masks, student_feats, teacher_feats):
            m = m[:, None].to(fs.dtype)
            loss = loss + ((m * fs - m * ft.detach())**2).mean()
        return self.loss_weight * loss
