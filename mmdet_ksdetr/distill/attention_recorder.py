"""Record a DETR decoder's attention maps while it runs (D3ETR attention distillation, QSKD's
attention-guided feature mask).

:class:`DecoderAttentionRecorder` attaches temporary forward hooks (removed when the ``with``
block ends; nothing is patched) to every decoder layer and records, per decoder pass:

* ``self_attn``: (L, B, Q, Q) self-attention weights averaged over heads, as returned by
  ``torch.nn.MultiheadAttention`` (mmcv's ``MultiheadAttention`` wraps one and already asks for
  the weights, so recording them costs nothing extra);
* ``cross_weights``: (L, B, Q, heads, levels, points) softmaxed attention weights of mmcv's
  ``MultiScaleDeformableAttention`` (a deformable decoder's cross-attention "map");
* ``cross_locations``: (L, B, Q, heads, levels, points, 2) its normalised sampling locations.

The tensors are the very ones the decoder computes (gradients flow for a student). Several
decoder passes inside one ``with`` block are kept apart: :meth:`take` returns one
:class:`DecoderAttention` per pass.
"""
from contextlib import contextmanager
from dataclasses import dataclass
from typing import List, Optional

import torch
from torch import Tensor, nn

__all__ = ['DecoderAttentionRecorder', 'DecoderAttention']


@dataclass
class DecoderAttention:
    """Attention of one decoder pass (see the module doc for shapes); ``None`` where the
    decoder has no such attention."""
    self_attn: Optional[Tensor]
    cross_weights: Optional[Tensor]
    cross_locations: Optional[Tensor]
    spatial_shapes: Optional[Tensor]


class DecoderAttentionRecorder:
    """Records the attention of ``decoder`` (an mmdet DETR decoder with ``layers``).

    Args:
        decoder (nn.Module): e.g. ``detector.decoder``.
        self_attn (bool): record self-attention weights.
        cross_attn (bool): record deformable cross-attention weights and locations.
    """

    def __init__(self, decoder: nn.Module, self_attn: bool = True, cross_attn: bool = True):
        layers = getattr(decoder, 'layers', None)
        if layers is None:
            raise TypeError(f'{type(decoder).__name__} has no `layers`; attention recording '
                            f'needs an mmdet DETR decoder')
        self.layers = list(layers)
        self.want_self, self.want_cross = self_attn, cross_attn
        for i, layer in enumerate(self.layers):
            if self_attn and not isinstance(getattr(getattr(layer, 'self_attn', None), 'attn',
                                                    None), nn.MultiheadAttention):
                raise TypeError(f'decoder layer {i} ({type(layer).__name__}) has no mmcv '
                                f'MultiheadAttention self_attn; switch self-attention '
                                f'distillation off for this detector')
            cross = getattr(layer, 'cross_attn', None)
            if cross_attn and not (hasattr(cross, 'attention_weights')
                                   and hasattr(cross, 'sampling_offsets')):
                raise TypeError(f'decoder layer {i} ({type(layer).__name__}) has no deformable '
                                f'cross-attention (MultiScaleDeformableAttention); switch '
                                f'cross-attention distillation off for this detector')
        self._reset()

    def _reset(self):
        self._self, self._weights, self._offsets, self._refs = [], [], [], []

    @contextmanager
    def record(self):
        """Hooks active inside the block; call :meth:`take` afterwards."""
        self._reset()
        handles = []
        try:
            for layer in self.layers:
                if self.want_self:
                    handles.append(layer.self_attn.attn.register_forward_hook(
                        lambda m, a, out: self._self.append(out[1])))
                if self.want_cross:
                    cross = layer.cross_attn
                    handles.append(cross.register_forward_pre_hook(
                        lambda m, a, kw: self._refs.append(
                            (m, kw.get('reference_points'), kw.get('spatial_shapes'))),
                        with_kwargs=True))
                    handles.append(cross.sampling_offsets.register_forward_hook(
                        lambda m, a, out: self._offsets.append(out)))
                    handles.append(cross.attention_weights.register_forward_hook(
                        lambda m, a, out: self._weights.append(out)))
            yield self
        finally:
            for h in handles:
                h.remove()

    def take(self) -> List[DecoderAttention]:
        """The recorded passes, each a :class:`DecoderAttention` over all layers."""
        L = len(self.layers)
        counts = [len(x) for x, on in ((self._self, self.want_self),
                                      (self._weights, self.want_cross)) if on]
        if not counts or counts[0] == 0:
            raise RuntimeError('no decoder pass was recorded: run the decoder inside '
                               'DecoderAttentionRecorder.record()')
        if any(c % L for c in counts) or len(set(counts)) > 1:
            raise RuntimeError(f'recorded {counts} attention calls for a {L}-layer decoder; '
                               f'was the decoder interrupted?')
        passes = []
        for p in range(counts[0] // L):
            sl = slice(p * L, (p + 1) * L)
            self_maps = torch.stack(self._self[sl]) if self.want_self else None
            weights = locations = shapes = None
            if self.want_cross:
                w, loc = [], []
                for (m, ref, shp), off, att in zip(self._refs[sl], self._offsets[sl],
                                                   self._weights[sl]):
                    w_l, loc_l = _deform_maps(m, ref, shp, off, att)
                    w.append(w_l)
                    loc.append(loc_l)
                    shapes = shp
                weights, locations = torch.stack(w), torch.stack(loc)
            passes.append(DecoderAttention(self_maps, weights, locations, shapes))
        self._reset()
        return passes


def _deform_maps(m, ref, spatial_shapes, offsets, weights):
    """Softmaxed weights (B, Q, H, Lv, P) and normalised sampling locations
    (B, Q, H, Lv, P, 2) of one MultiScaleDeformableAttention call (same formulas as mmcv)."""
    H, Lv, P = m.num_heads, m.num_levels, m.num_points
    if not getattr(m, 'batch_first', True):
        raise NotImplementedError('deformable attention with batch_first=False')
    B, Q = weights.shape[:2]
    w = weights.view(B, Q, H, Lv * P).softmax(-1).view(B, Q, H, Lv, P)
    off = offsets.view(B, Q, H, Lv, P, 2)
    if ref.shape[-1] == 2:
        norm = torch.stack([spatial_shapes[..., 1], spatial_shapes[..., 0]], -1).to(off.dtype)
        loc = ref[:, :, None, :, None, :] + off / norm[None, None, None, :, None, :]
    else:
        loc = ref[:, :, None, :, None, :2] + off / P * ref[:, :, None, :, None, 2:] * 0.5
    return w, loc


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
    sizes = (hw[:, 0] * hw[:, 1])
    starts = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
    w_lv = hw[:, 1].view(1, 1, 1, Lv, 1)
    h_lv = hw[:, 0].view(1, 1, 1, Lv, 1)
    x = (locations[..., 0] * w_lv).floor().long()
    y = (locations[..., 1] * h_lv).floor().long()
    inside = (x >= 0) & (x < w_lv) & (y >= 0) & (y < h_lv)
    flat = starts.view(1, 1, 1, Lv, 1) + y.clamp(min=0) * w_lv + x.clamp(min=0)
    flat = torch.where(inside, flat, torch.zeros_like(flat))
    vals = weights * query_weights.view(B, Q, 1, 1, 1).float() * inside
    dense = weights.new_zeros(B, int(sizes.sum()))
    dense.scatter_add_(1, flat.reshape(B, -1), vals.reshape(B, -1))
    return [d.view(B, int(h), int(w_)) for d, (h, w_) in
            zip(dense.split(sizes.tolist(), dim=1), hw.tolist())]
