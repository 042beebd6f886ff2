"""Attention accuracy of KS-DETR's last encoder layer (``tools/analysis_tools/ks_attention.py``).

**Attention accuracy** is the share of attention mass that foreground tokens put on foreground
tokens. The foreground tokens are those of KS-DETR's GT token mask
(:func:`~mmdet_ksdetr.models.ks_detr.ks_gt_mask.gt_foreground_token_mask`, built in the padded
input frame exactly as in training). For one image::

    accuracy = mean over foreground query tokens q of  fg_mass(q)

and the reported number is the mean of the per-image accuracies over the images that have at
least one foreground token. Attention is averaged over heads first (``fg_mass`` is linear in
the map, so this equals the mean of the per-head masses).

* Dense (global) attention, ``A`` of shape (N, N) with rows summing to 1:
  ``fg_mass(q) = sum_{k foreground} A[q, k]``.
* Deformable attention, weights ``A[q, h, l, p]`` (softmax over the L * P points of a head) at
  sampling locations ``S[q, h, l, p]`` in [0, 1]^2 of level l: the mass a sample gives a token
  is its **bilinear** interpolation coefficient on that token, exactly how the attention reads
  the value map (``grid_sample``, ``align_corners=False``, zeros outside the map), so
  ``fg_mass(q) = mean_h sum_{l, p} A[q, h, l, p] * bilinear(fg_l, S[q, h, l, p])``, with
  ``fg_l`` the 0/1 foreground map of level l. Mass sampled outside the map reaches no token and
  counts as not foreground.

Streams: ``student`` uses the student map ``A``; ``ks_share_v`` (``A^t V``) the teacher map
``A^t`` (for deformable attention: the teacher weights at the student's sampling locations);
``ks_share_a`` (``A V^t``) shares the student map, so its accuracy equals the student's.

JSON schema of ``ks_attention.json``::

    {"tool": "ks_attention", "definition": str, "num_images": int,
     "models": [{"label", "config", "checkpoint", "detector": str, "attention": "dense" |
                 "deformable", "ks": bool, "images_with_foreground": int,
                 "foreground_token_fraction": [per level, mean over images],
                 "chance_level": mean over images with foreground of fg tokens / valid tokens,
                 "streams": {name: {"attention_map": "A" | "A^t", "accuracy": float | null,
                                    "per_image": [float | null, ...]}}}],
     "figure": {"image_index": int, "img_path": str, "input_shape": [H, W],
                "gt_boxes": [[x1, y1, x2, y2], ...] (input pixels),
                "levels": [{"shape": [h, w], "foreground": [[0/1, ...], ...]}],
                "tokens": {label: [{"x", "y", "level", "index", "foreground": bool,
                           "streams": {name: {"fg_mass": float,
                             "attention": [[...] h x w] (dense) |
                             "samples": [[x_px, y_px, level, weight], ...] (deformable)}}}]}},
     "files": {"mask": png, "attention": png, "accuracy": png}}
"""
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mmdet_ksdetr.analysis.common import \
    gt_boxes_in_input_frame  # noqa: F401  (part of this module's API)
from mmdet_ksdetr.utils.errors import InputError

__all__ = [
    'DEFINITION', 'fg_mass_dense', 'foreground_share', 'fg_mass_deformable', 'attention_accuracy',
    'dense_attention_map', 'deformable_sampling', 'encoder_attention_kind',
    'record_last_encoder_attention', 'EncoderAttentionRecord', 'stream_attention',
    'stream_fg_mass', 'split_levels', 'gt_boxes_in_input_frame'
]

DEFINITION = ('attention accuracy = mean over foreground query tokens of the head-averaged '
              'attention mass on foreground tokens (GT token mask of KS-DETR, padded input '
              'frame), per image, then mean over the images with foreground; deformable: each '
              'sampling weight counts with the bilinear coefficient of its location on the '
              'foreground cells of its level (zeros outside the map)')


def fg_mass_dense(attn: Tensor, fg_mask: Tensor) -> Tensor:
    """Attention mass on foreground keys per query.

    Args:
        attn: (B, Nq, Nk) or per head (B, heads, Nq, Nk), rows summing to 1.
        fg_mask: (B, Nk) bool, foreground key tokens.

    Returns:
        Tensor: (B, Nq) float, head-averaged mass on foreground keys.
    """
    if attn.dim() == 4:
        attn = attn.mean(1)
    return torch.einsum('bqk,bk->bq', attn.float(), fg_mask.float())


def fg_mass_deformable(weights: Tensor, locations: Tensor, fg_mask: Tensor,
                       spatial_shapes: Sequence[Sequence[int]]) -> Tensor:
    """Deformable attention mass on foreground tokens per query (bilinear, see module doc).

    Args:
        weights: (B, N, heads, L, P), softmaxed over L * P per head.
        locations: (B, N, heads, L, P, 2) sampling locations (x, y) in [0, 1].
        fg_mask: (B, sum(h * w)) bool foreground tokens, levels concatenated row-major.
        spatial_shapes: (h, w) of each level.

    Returns:
        Tensor: (B, N) float, head-averaged mass on foreground tokens.
    """
    B, N, H, L, P = weights.shape
    mass = weights.new_zeros(B, N)
    for level, fg in enumerate(split_levels(fg_mask.float(), spatial_shapes)):
        grid = (2 * locations[:, :, :, level] - 1).reshape(B, N, H * P, 2)
        fg_at = F.grid_sample(fg[:, None], grid.float(), mode='bilinear', padding_mode='zeros',
                              align_corners=False)[:, 0].view(B, N, H, P)
        mass = mass + (weights[:, :, :, level].float() * fg_at).sum((-1, -2)) / H
    return mass


def split_levels(tokens: Tensor, spatial_shapes: Sequence[Sequence[int]]) -> List[Tensor]:
    """(B, sum(h * w), ...) flattened levels -> list of (B, h, w, ...)."""
    shapes = [(int(h), int(w)) for h, w in spatial_shapes]
    parts = tokens.split([h * w for h, w in shapes], 1)
    return [p.reshape(p.shape[0], h, w, *p.shape[2:]) for p, (h, w) in zip(parts, shapes)]


def attention_accuracy(fg_mass: Tensor, fg_mask: Tensor) -> List[Optional[float]]:
    """Per image: mean ``fg_mass`` over its foreground query tokens (None without any).

    ``fg_mass`` and ``fg_mask``: (B, N)."""
    out = []
    for mass, fg in zip(fg_mass, fg_mask.bool()):
        out.append(float(mass[fg].mean()) if fg.any() else None)
    return out


def foreground_share(fg_mask: Tensor, padding_mask: Optional[Tensor]) -> List[Optional[float]]:
    """Per image: foreground tokens / valid tokens (the attention accuracy of attention spread
    evenly over the valid tokens, the chance level); None for an image without foreground."""
    valid = torch.ones_like(fg_mask) if padding_mask is None else ~padding_mask.bool()
    return [float(f.sum() / v.sum()) if f.any() else None for f, v in zip(fg_mask, valid)]


def dense_attention_map(x: Tensor, pos: Optional[Tensor], key_padding_mask: Optional[Tensor],
                        w_q: Tensor, b_q: Tensor, w_k: Tensor, b_k: Tensor,
                        num_heads: int) -> Tensor:
    """Head-averaged ``softmax(Q K^T / sqrt(d) + M)`` with ``Q = W_q (x + p)``,
    ``K = W_k (x + p)`` and ``M`` = -inf at padding keys: (B, N, N).

    ``x``/``pos``: (B, N, E); ``key_padding_mask``: (B, N) bool (True at padding) or None."""
    B, N, E = x.shape
    d = E // num_heads
    xp = x if pos is None else x + pos
    q = F.linear(xp, w_q, b_q).view(B, N, num_heads, d).transpose(1, 2)
    k = F.linear(xp, w_k, b_k).view(B, N, num_heads, d).transpose(1, 2)
    logits = torch.matmul(q, k.transpose(-2, -1)) / d**0.5
    if key_padding_mask is not None:
        logits = logits.masked_fill(key_padding_mask.bool()[:, None, None], float('-inf'))
    return logits.softmax(-1).mean(1)


def deformable_sampling(reference_points: Tensor, offsets: Tensor, logits: Tensor,
                        spatial_shapes: Tensor, num_heads: int, num_levels: int,
                        num_points: int) -> Tuple[Tensor, Tensor]:
    """Sampling locations and softmaxed weights of a deformable attention, from the raw
    outputs of its ``sampling_offsets`` and ``attention_weights`` layers (as mmcv computes them).

    Args:
        reference_points: (B, N, L, 2). offsets: (B, N, heads * L * P * 2).
        logits: (B, N, heads * L * P). spatial_shapes: (L, 2) (h, w).

    Returns:
        (locations (B, N, heads, L, P, 2), weights (B, N, heads, L, P)).
    """
    B, N = logits.shape[:2]
    H, L, P = num_heads, num_levels, num_points
    offsets = offsets.view(B, N, H, L, P, 2)
    normalizer = torch.stack([spatial_shapes[..., 1], spatial_shapes[..., 0]], -1)
    locations = reference_points[:, :, None, :, None, :] + \
        offsets / normalizer[None, None, None, :, None, :]
    weights = logits.view(B, N, H, L * P).softmax(-1).view(B, N, H, L, P)
    return locations, weights


def encoder_attention_kind(detector) -> str:
    """``'dense'`` or ``'deformable'``: the kind of self-attention of the detector's last
    encoder layer; an InputError for a model that is not a DETR with such an encoder."""
    from mmcv.cnn.bricks.transformer import MultiheadAttention
    from mmcv.ops import MultiScaleDeformableAttention
    from mmdet.models.detectors.base_detr import DetectionTransformer
    name = type(detector).__name__
    layers = getattr(getattr(detector, 'encoder', None), 'layers', None)
    if not isinstance(detector, DetectionTransformer) or not layers:
        raise InputError(f'{name} is not a DETR detector with a transformer encoder: '
                         f'ks_attention needs a (KS-)DETR model')
    attn = getattr(layers[-1], 'self_attn', None)
    if isinstance(attn, MultiScaleDeformableAttention):
        return 'deformable'
    if isinstance(attn, MultiheadAttention):
        return 'dense'
    raise InputError(f'{name}: the last encoder layer has a {type(attn).__name__} '
                     f'self-attention; ks_attention supports mmcv MultiheadAttention and '
                     f'MultiScaleDeformableAttention (and their KS versions)')


@dataclass
class EncoderAttentionRecord:
    """What the last encoder self-attention saw and computed in a (stock, GT-free) forward.

    Attributes:
        inputs: its keyword inputs (``query`` (B, N, C), ``query_pos``, ``key_padding_mask``,
            and for deformable attention ``reference_points``, ``spatial_shapes``).
        outputs: raw outputs of its sub-layers: ``'attn_weights'`` (dense, (B, N, N),
            head-averaged) or ``'sampling_offsets'`` / ``'attention_weights'`` (deformable).
    """
    inputs: Dict
    outputs: Dict


@contextmanager
def record_last_encoder_attention(detector) -> Iterator[EncoderAttentionRecord]:
    """Forward hooks on the last encoder layer's self-attention (and its sub-layers) that
    fill an :class:`EncoderAttentionRecord`; removed on exit."""
    kind = encoder_attention_kind(detector)
    attn = detector.encoder.layers[-1].self_attn
    record = EncoderAttentionRecord({}, {})

    def save_inputs(module, args, kwargs):
        record.inputs.update(kwargs)
        if args:
            record.inputs['query'] = args[0]

    def save_output(name, index=None):
        def hook(module, args, output):
            record.outputs[name] = output if index is None else output[index]
        return hook

    handles = [attn.register_forward_pre_hook(save_inputs, with_kwargs=True)]
    try:
        if kind == 'dense':
            handles.append(attn.attn.register_forward_hook(save_output('attn_weights', 1)))
        else:
            for name in ('sampling_offsets', 'attention_weights'):
                handles.append(getattr(attn, name).register_forward_hook(save_output(name)))
        yield record
    finally:
        for h in handles:
            h.remove()


def _teacher_streams(attn) -> Tuple[str, ...]:
    return tuple(f'ks_{s}' for s in getattr(attn, 'teacher_streams', ()))


@torch.no_grad()
def stream_attention(detector, record: EncoderAttentionRecord,
                     fg_mask: Optional[Tensor]) -> Dict[str, Dict]:
    """The attention of every stream of the last encoder layer: the student's from
    ``record``, the teachers' computed with their own weights on the GT-aware input
    ``teacher_input(x, fg_mask)`` (``fg_mask`` (B, N) bool; only needed for KS layers).

    Returns ``{stream: dict(map='A' | 'A^t', attn=(B, N, N))}`` (dense) or
    ``{stream: dict(map=..., weights=(B, N, H, L, P), locations=(B, N, H, L, P, 2))}``."""
    layer = detector.encoder.layers[-1]
    attn = layer.self_attn
    kind = encoder_attention_kind(detector)
    ins, outs = record.inputs, record.outputs
    x, pos, kpm = ins['query'], ins.get('query_pos'), ins.get('key_padding_mask')
    if kind == 'dense':
        student = dict(map='A', attn=outs['attn_weights'])
    else:
        loc, w = deformable_sampling(ins['reference_points'], outs['sampling_offsets'],
                                     outs['attention_weights'], ins['spatial_shapes'],
                                     attn.num_heads, attn.num_levels, attn.num_points)
        student = dict(map='A', weights=w, locations=loc)
    streams = {'student': student}
    teachers = _teacher_streams(attn)
    if 'ks_share_v' in teachers:
        x_t = layer.teacher_input(x, fg_mask)
        q_t = x_t if pos is None else x_t + pos
        if kind == 'dense':
            E = attn.embed_dims
            tw, tb = attn.teacher_in_proj_weight, attn.teacher_in_proj_bias
            a_t = dense_attention_map(x_t, pos, kpm, tw[:E], tb[:E], tw[E:2 * E],
                                      tb[E:2 * E], attn.num_heads)
            streams['ks_share_v'] = dict(map='A^t', attn=a_t)
        else:
            B, N = q_t.shape[:2]
            H, L, P = attn.num_heads, attn.num_levels, attn.num_points
            w_t = attn.teacher_attention_weights(q_t).view(B, N, H, L * P).softmax(-1)
            streams['ks_share_v'] = dict(map='A^t', weights=w_t.view(B, N, H, L, P),
                                         locations=student['locations'])
    if 'ks_share_a' in teachers:
        streams['ks_share_a'] = student
    return streams


def stream_fg_mass(stream: Dict, fg_mask: Tensor,
                   spatial_shapes: Sequence[Sequence[int]]) -> Tensor:
    """(B, N) foreground mass per query of one entry of :func:`stream_attention`."""
    if 'attn' in stream:
        return fg_mass_dense(stream['attn'], fg_mask)
    return fg_mass_deformable(stream['weights'], stream['locations'], fg_mask, spatial_shapes)
