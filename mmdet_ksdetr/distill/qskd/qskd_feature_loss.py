"""QSKD's attention-guided feature distillation (AGFD) of the encoder memory."""
from typing import List, Sequence, Union

import torch
from mmrazor.registry import MODELS
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

__all__ = ['AttnGuidedFeatureLoss', 'masked_squared_error', 'splat_attention']

SPLATS = ('bilinear', 'nearest')
NORMALIZERS = ('all_levels', 'per_level')
FEATURES = ('memory', 'neck')
# CPU: feature elements per block of the masked squared error (1 MiB of float32: the block's
# difference stays in cache instead of a (B, S, D) temporary going through memory); None: the
# whole tensor in one block, as on other devices
CPU_BLOCK_ELEMENTS = 1 << 18


def _corners(grid_x: Tensor, grid_y: Tensor, mode: str):
    """Integer cells (x, y) and the share of a point at grid coordinates (grid_x, grid_y):
    the 4 bilinear neighbours (cell i at grid coordinate i: a point at x * W = 2.0 falls wholly
    in column 2, one at 2.5 half in column 2 and half in column 3), or the one cell it lies in."""
    x0, y0 = grid_x.floor(), grid_y.floor()
    if mode == 'nearest':
        return [(x0.long(), y0.long(), torch.ones_like(grid_x))]
    dx, dy = grid_x - x0, grid_y - y0
    x0, y0 = x0.long(), y0.long()
    return [(x0, y0, (1 - dx) * (1 - dy)), (x0 + 1, y0, dx * (1 - dy)),
            (x0, y0 + 1, (1 - dx) * dy), (x0 + 1, y0 + 1, dx * dy)]


def splat_attention(weights: Tensor, locations: Tensor, spatial_shapes: Tensor,
                    query_weights: Tensor, mode: str = 'bilinear',
                    flat: bool = False) -> Union[Tensor, List[Tensor]]:
    """Dense maps of deformable cross-attention: every sampling point adds
    ``query_weight * attention_weight`` to the feature cells around it, summed over queries,
    heads and points. Vectorised over images, queries, heads, levels and points.

    ``mode='bilinear'``: the point at grid coordinates ``(x * w, y * h)`` is shared among the 4
    cells around it with bilinear weights, cell ``i`` sitting at grid coordinate ``i``; shares
    that fall outside the map are dropped. ``mode='nearest'``: the whole weight goes to cell
    ``(floor(x * w), floor(y * h))``, dropped if outside.

    Args:
        weights: (B, Q, H, Lv, P); locations: (B, Q, H, Lv, P, 2) normalised (x, y);
        spatial_shapes: (Lv, 2) (h, w) per level; query_weights: (B, Q) (0 = ignore query).
        mode: 'bilinear' or 'nearest'.
        flat: return one (B, S) tensor, S = sum h_l * w_l, levels one after another, row-major
            (the token order of the encoder memory).

    Returns:
        (B, S) if ``flat``, else a list of Lv tensors (B, h_l, w_l).
    """
    if mode not in SPLATS:
        raise ValueError(f'splat_attention: mode must be one of {SPLATS}, got {mode!r}')
    B, Q, H, Lv, P = weights.shape
    weights, locations = weights.float(), locations.float()  # fp16-safe accumulation
    hw = spatial_shapes.long()
    hw_host = hw.tolist()  # the one host sync: the level sizes shape the output
    sizes_host = [int(h) * int(w) for h, w in hw_host]
    sizes = hw[:, 0] * hw[:, 1]
    starts = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]]).view(1, 1, 1, Lv, 1)
    w_lv = hw[:, 1].view(1, 1, 1, Lv, 1)
    h_lv = hw[:, 0].view(1, 1, 1, Lv, 1)
    vals = weights * query_weights.view(B, Q, 1, 1, 1).float()
    dense = weights.new_zeros(B, sum(sizes_host))
    for x, y, share in _corners(locations[..., 0] * w_lv, locations[..., 1] * h_lv, mode):
        inside = (x >= 0) & (x < w_lv) & (y >= 0) & (y < h_lv)
        index = torch.where(inside, starts + y * w_lv + x, torch.zeros_like(x))
        dense.scatter_add_(1, index.reshape(B, -1), (vals * share * inside).reshape(B, -1))
    if flat:
        return dense
    return [d.view(B, int(h), int(w_)) for d, (h, w_) in
            zip(dense.split(sizes_host, dim=1), hw_host)]


def _blocks(feats: Tensor, channel_dim: int):
    """Index tuples covering ``feats`` (B, S, D) (``channel_dim=2``) or (B, D, S)
    (``channel_dim=1``): on the CPU one image and about ``CPU_BLOCK_ELEMENTS`` elements each
    (whole channel vectors), elsewhere (or ``CPU_BLOCK_ELEMENTS=None``) the whole tensor."""
    B, S = feats.shape[0], feats.shape[3 - channel_dim]
    if feats.device.type != 'cpu' or CPU_BLOCK_ELEMENTS is None:
        return [(slice(None), ) * 3]
    step = max(1, CPU_BLOCK_ELEMENTS // feats.shape[channel_dim])
    tokens = [slice(i, min(i + step, S)) for i in range(0, S, step)]
    if channel_dim == 2:
        return [(b, t, slice(None)) for b in range(B) for t in tokens]
    return [(b, slice(None), t) for b in range(B) for t in tokens]


class _MaskedSquaredError(torch.autograd.Function):
    """``sum(weight * |fs - ft|^2) / fs.numel()``, the squared norm over the channel dim.

    The forward keeps only the (B, S) squared distances (the channel differences are made block
    by block, see :func:`_blocks`) and saves no new tensor; the backward writes
    ``2 * weight * (fs - ft) * grad / fs.numel()`` straight into the gradient. Autograd on
    ``((m * fs - m * ft)**2).mean()`` instead makes and saves four (B, S, D) tensors and walks
    four more in the backward. ``weight`` (B, S) sets the accumulation dtype (float32 at least:
    float16 features)."""

    @staticmethod
    def forward(ctx, fs: Tensor, ft: Tensor, weight: Tensor, channel_dim: int) -> Tensor:
        dist = torch.empty_like(weight)  # squared norms of fs - ft, filled block by block
        buf = None
        for idx in _blocks(fs, channel_dim):
            a = fs[idx]
            if buf is None:  # the first block is the largest
                buf = torch.empty_like(a)
            diff = torch.sub(a, ft[idx], out=buf[tuple(slice(n) for n in a.shape)])
            dist[idx[:1] + idx[3 - channel_dim:4 - channel_dim]] = torch.linalg.vector_norm(
                diff, dim=channel_dim - fs.dim(), dtype=dist.dtype)
        ctx.save_for_backward(fs, ft, weight)
        ctx.channel_dim = channel_dim
        return (dist.square_() * weight).sum() / fs.numel()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        if not ctx.needs_input_grad[0]:
            return None, None, None, None
        fs, ft, weight = ctx.saved_tensors
        scale = (weight * grad * 2.0 / fs.numel()).unsqueeze(ctx.channel_dim)
        out = torch.empty_like(fs, memory_format=torch.contiguous_format)
        for idx in _blocks(fs, ctx.channel_dim):
            torch.sub(fs[idx], ft[idx], out=out[idx]).mul_(scale[idx])
        return out, None, None, None


def masked_squared_error(fs: Tensor, ft: Tensor, mask: Tensor, channel_dim: int = 2) -> Tensor:
    """``((mask * fs - mask * ft.detach())**2).mean()`` with ``mask`` broadcast over the
    channels, computed as ``sum(mask^2 * |fs - ft|^2) / fs.numel()`` with a cheap backward.

    Args:
        fs, ft: (B, S, D) (``channel_dim=2``) or (B, D, S) (``channel_dim=1``), equal shapes.
        mask: (B, S). Returns a scalar of ``fs.dtype``; no gradient to ``ft`` or ``mask``.
    """
    weight = mask.detach().to(torch.promote_types(fs.dtype, torch.float32)).square()
    return _MaskedSquaredError.apply(fs, ft.detach(), weight, channel_dim).to(fs.dtype)


@MODELS.register_module()
class AttnGuidedFeatureLoss(nn.Module):
    """Attention-guided feature distillation: the encoder memory is compared only where the
    teacher's *selected* decoder queries (positives and hard negatives) look.

    Mask (one per image, over the S memory tokens): ``M = mean_k w_k * A_k`` over the selected
    teacher queries ``k``, with ``w_k = 1 + GIoU_k`` and ``A_k`` query k's deformable
    cross-attention splatted on the token grid (:func:`splat_attention`), then
    ``M / max(max_S M, min_peak)``. Loss: ``loss_weight * mean_{B,S,D}((M * F_s - M * F_t)^2)``.

    Options (defaults follow the TPRD release's QSKD):

    * ``splat``: ``'bilinear'`` (4 cells around each point) or ``'nearest'`` (one cell).
    * ``normalize``: ``'all_levels'`` (one peak per image over all levels, floored at
      ``min_peak``, default 1e-2) or ``'per_level'`` (each level divided by its own peak,
      floored at ``min_peak``, default 1e-12).
    * ``features``: ``'memory'`` (one MSE over all tokens of the encoder memory) or ``'neck'``
      (the mask reshaped to the neck levels, per-level MSEs summed).

    Shapes: ``features='memory'``: student / teacher memory (B, S, D), equal shapes;
    ``features='neck'``: lists of (B, D, h_l, w_l) with equal shapes. Teacher cross-attention
    weights (B, Q, H, Lv, P) and locations (B, Q, H, Lv, P, 2); ``spatial_shapes`` (Lv, 2);
    ``query_weights`` (B, Q) = ``w_k`` for selected queries, 0 for the others; ``selected``
    (B, Q) bool (default ``query_weights > 0``): the queries the mean runs over.
    """

    def __init__(self, loss_weight: float = 100.0, splat: str = 'bilinear',
                 normalize: str = 'all_levels', features: str = 'memory', min_peak=None):
        super().__init__()
        for name, value, allowed in (('splat', splat, SPLATS),
                                     ('normalize', normalize, NORMALIZERS),
                                     ('features', features, FEATURES)):
            if value not in allowed:
                raise ValueError(f'AttnGuidedFeatureLoss: {name} must be one of {allowed}, '
                                 f'got {value!r}')
        self.loss_weight = loss_weight
        self.splat, self.normalize, self.features = splat, normalize, features
        if min_peak is None:
            min_peak = 1e-2 if normalize == 'all_levels' else 1e-12
        self.min_peak = float(min_peak)

    @torch.no_grad()
    def masks(self, weights: Tensor, locations: Tensor, spatial_shapes: Tensor,
              query_weights: Tensor, selected: Tensor = None) -> List[Tensor]:
        """Normalised masks, a list of Lv tensors (B, h_l, w_l)."""
        if selected is None:
            selected = query_weights > 0
        count = selected.sum(1).clamp(min=1).to(torch.float32)
        qw = torch.where(selected, query_weights.float(),
                         torch.zeros_like(query_weights, dtype=torch.float32))
        maps = splat_attention(weights.detach(), locations.detach(), spatial_shapes,
                               qw / count[:, None], mode=self.splat)
        peaks = torch.stack([m.flatten(1).amax(1) for m in maps], 1)  # (B, Lv)
        if self.normalize == 'all_levels':
            peaks = peaks.amax(1, keepdim=True).expand_as(peaks)
        peaks = peaks.clamp(min=self.min_peak)
        return [m / peaks[:, i, None, None] for i, m in enumerate(maps)]

    def forward(self, student_feats: Union[Tensor, Sequence[Tensor]],
                teacher_feats: Union[Tensor, Sequence[Tensor]], weights: Tensor,
                locations: Tensor, spatial_shapes: Tensor, query_weights: Tensor,
                selected: Tensor = None) -> Tensor:
        masks = self.masks(weights, locations, spatial_shapes, query_weights, selected)
        if self.features == 'memory':
            mask = torch.cat([m.flatten(1) for m in masks], 1)
            return self.loss_weight * self._memory_loss(student_feats, teacher_feats, mask)
        return self.loss_weight * self._neck_loss(student_feats, teacher_feats, masks)

    @staticmethod
    def _memory_loss(fs: Tensor, ft: Tensor, mask: Tensor) -> Tensor:
        if not (isinstance(fs, Tensor) and isinstance(ft, Tensor)) or fs.shape != ft.shape \
                or fs.dim() != 3 or fs.shape[:2] != mask.shape:
            def shape(f):
                return tuple(f.shape) if isinstance(f, Tensor) else type(f).__name__

            raise ValueError(f'AttnGuidedFeatureLoss(features="memory"): student and teacher '
                             f'encoder memories must both be (B, S, D) with S = '
                             f'{mask.shape[1]} tokens of the attention levels (equal embed '
                             f'dims and feature levels), got {shape(fs)} vs {shape(ft)}')
        return masked_squared_error(fs, ft, mask)

    @staticmethod
    def _neck_loss(student_feats, teacher_feats, masks) -> Tensor:
        if len(student_feats) != len(teacher_feats) or any(
                s.shape != t.shape for s, t in zip(student_feats, teacher_feats)):
            raise ValueError(f'AttnGuidedFeatureLoss: student and teacher neck features must '
                             f'have equal shapes (e.g. ChannelMapper to 256 channels), got '
                             f'{[tuple(s.shape) for s in student_feats]} vs '
                             f'{[tuple(t.shape) for t in teacher_feats]}')
        if len(masks) != len(student_feats) or any(
                m.shape[-2:] != f.shape[-2:] for m, f in zip(masks, student_feats)):
            raise ValueError(f'AttnGuidedFeatureLoss: the cross-attention levels '
                             f'{[tuple(m.shape[-2:]) for m in masks]} do not match the neck '
                             f'feature maps {[tuple(f.shape[-2:]) for f in student_feats]}')
        loss = student_feats[0].new_zeros(())
        for m, fs, ft in zip(masks, student_feats, teacher_feats):
            loss = loss + masked_squared_error(fs.flatten(2), ft.flatten(2), m.flatten(1),
                                               channel_dim=1)
        return loss
