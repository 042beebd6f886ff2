"""Record a DETR decoder's attention maps while it runs (D3ETR attention distillation, QSKD's
attention-guided feature mask), with forward hooks removed when the ``with`` block ends.

:class:`DecoderAttentionRecorder` is checked once against a decoder (it holds no data); each
:meth:`~DecoderAttentionRecorder.record` block yields a fresh :class:`AttentionLog` whose
:meth:`~AttentionLog.passes` gives one
:class:`~mmdet_ksdetr.distill.core.structures.DecoderAttention` per decoder pass run inside
the block. The tensors are the very ones the decoder computes (gradients flow for a student):
mmcv's ``MultiheadAttention`` already asks ``torch.nn.MultiheadAttention`` for its
head-averaged weights, and a deformable cross-attention's weights and sampling locations are
rebuilt from its ``attention_weights`` / ``sampling_offsets`` outputs (mmcv's formulas).
"""
from contextlib import contextmanager
from typing import List

import torch
from torch import nn

from mmdet_ksdetr.distill.core.structures import DecoderAttention

__all__ = ['DecoderAttentionRecorder', 'AttentionLog']


class AttentionLog:
    """What the hooks of one :meth:`DecoderAttentionRecorder.record` block saw."""

    def __init__(self, num_layers: int, self_attn: bool, cross_attn: bool):
        self.num_layers = num_layers
        self.want_self, self.want_cross = self_attn, cross_attn
        self.self_maps, self.weights, self.offsets, self.refs = [], [], [], []

    def passes(self) -> List[DecoderAttention]:
        """One :class:`DecoderAttention` per recorded decoder pass, in call order."""
        L = self.num_layers
        counts = [len(x) for x, on in ((self.self_maps, self.want_self),
                                       (self.weights, self.want_cross)) if on]
        if not counts or counts[0] == 0:
            raise RuntimeError('no decoder pass was recorded: run the decoder inside '
                               'DecoderAttentionRecorder.record()')
        if any(c % L for c in counts) or len(set(counts)) > 1:
            raise RuntimeError(f'recorded {counts} attention calls for a {L}-layer decoder; '
                               f'was the decoder interrupted?')
        return [self._pass(slice(p * L, (p + 1) * L)) for p in range(counts[0] // L)]

    def _pass(self, sl: slice) -> DecoderAttention:
        out = DecoderAttention()
        if self.want_self:
            out.self_attn = torch.stack(self.self_maps[sl])
        if self.want_cross:
            maps = [_deform_maps(m, ref, shapes, off, att) for (m, ref, shapes), off, att in
                    zip(self.refs[sl], self.offsets[sl], self.weights[sl])]
            out.cross_weights = torch.stack([w for w, _ in maps])
            out.cross_locations = torch.stack([loc for _, loc in maps])
            out.spatial_shapes = self.refs[sl][-1][2]
        return out


class DecoderAttentionRecorder:
    """Records the attention of ``decoder`` (an mmdet DETR decoder with ``layers``).

    Args:
        decoder (nn.Module): e.g. ``detector.decoder``.
        self_attn (bool): record self-attention weights (mmcv ``MultiheadAttention``).
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

    def _hooks(self, log: AttentionLog):
        for layer in self.layers:
            if self.want_self:
                yield layer.self_attn.attn.register_forward_hook(
                    lambda m, a, out: log.self_maps.append(out[1]))
            if self.want_cross:
                cross = layer.cross_attn
                yield cross.register_forward_pre_hook(
                    lambda m, a, kw: log.refs.append(
                        (m, kw.get('reference_points'), kw.get('spatial_shapes'))),
                    with_kwargs=True)
                yield cross.sampling_offsets.register_forward_hook(
                    lambda m, a, out: log.offsets.append(out))
                yield cross.attention_weights.register_forward_hook(
                    lambda m, a, out: log.weights.append(out))

    @contextmanager
    def record(self):
        """Hooks active inside the block; yields the block's :class:`AttentionLog`."""
        log = AttentionLog(len(self.layers), self.want_self, self.want_cross)
        handles = []
        try:
            handles.extend(self._hooks(log))
            yield log
        finally:
            for handle in handles:
                handle.remove()


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
