"""QSKD's attention-guided feature distillation (AGFD)."""
from typing import List, Sequence

import torch
from mmrazor.registry import MODELS
from torch import Tensor, nn

__all__ = ['AttnGuidedFeatureLoss', 'splat_attention']


def splat_attention(weights: Tensor, locations: Tensor, spatial_shapes: Tensor,
                    query_weights: Tensor) -> List[Tensor]:
    """Dense per-level maps of deformable cross-attention: every sampling point adds
    ``query_weight * attention_weight`` to the feature cell it falls in (nearest cell; points
    outside the map are dropped). Vectorised over images, queries, heads, levels and points.

    Args:
        weights: (B, Q, H, Lv, P); locations: (B, Q, H, Lv, P, 2) normalised (x, y);
        spatial_shapes: (Lv, 2) (h, w) per level; query_weights: (B, Q) (0 = ignore query).

    Returns:
        list of Lv tensors (B, h_l, w_l).
    """
    B, Q, H, Lv, P = weights.shape
    weights, locations = weights.float(), locations.float()  # fp16-safe accumulation
    hw = spatial_shapes.long()
    hw_host = hw.tolist()  # the one host sync: the level sizes shape the output
    sizes_host = [int(h) * int(w) for h, w in hw_host]
    sizes = hw[:, 0] * hw[:, 1]
    starts = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
    w_lv = hw[:, 1].view(1, 1, 1, Lv, 1)
    h_lv = hw[:, 0].view(1, 1, 1, Lv, 1)
    x = (locations[..., 0] * w_lv).floor().long()
    y = (locations[..., 1] * h_lv).floor().long()
    inside = (x >= 0) & (x < w_lv) & (y >= 0) & (y < h_lv)
    flat = starts.view(1, 1, 1, Lv, 1) + y.clamp(min=0) * w_lv + x.clamp(min=0)
    flat = torch.where(inside, flat, torch.zeros_like(flat))
    vals = weights * query_weights.view(B, Q, 1, 1, 1).float() * inside
    dense = weights.new_zeros(B, sum(sizes_host))
    dense.scatter_add_(1, flat.reshape(B, -1), vals.reshape(B, -1))
    return [d.view(B, int(h), int(w_)) for d, (h, w_) in
            zip(dense.split(sizes_host, dim=1), hw_host)]


@MODELS.register_module()
class AttnGuidedFeatureLoss(nn.Module):
    """Attention-guided feature distillation: neck features are compared only where the
    teacher's *selected* decoder queries (positives and hard negatives) look.

    The mask of each neck level is ``mean_k (1 + GIoU_k) * A_k`` over the selected teacher
    queries ``k``, where ``A_k`` is query k's deformable cross-attention scattered onto the
    level's grid (:func:`splat_attention` below), divided by
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
