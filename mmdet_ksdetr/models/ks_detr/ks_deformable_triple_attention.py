"""Multi-scale deformable triple attention of KS-DETR (the released "v0" form).

Deformable attention has no N x N map; its "attention" is the per-query softmax over the
L * P sampled points. The student computes sampling locations ``S`` (offsets from ``x + p``),
weights ``A = softmax(W_a (x + p))`` and values ``V = W_v x``. The teacher has **no** sampling
offsets of its own: it reuses ``S`` and owns only ``A^t = softmax(W_a^t (x^t + p))`` and
``V^t = W_v^t x^t``. The streams ``MSDA(V, S, A)``, ``MSDA(V, S, A^t)`` (share_v) and
``MSDA(V^t, S, A)`` (share_a) all go through the shared ``output_proj``, dropout and residual.
Padding is zeroed in V and V^t alike. Without ``teacher_query`` the module is mmcv's
:class:`~mmcv.ops.MultiScaleDeformableAttention`, with the same parameter names.
"""
from typing import List, Optional

import torch
import torch.nn.functional as F
from mmcv.ops import MultiScaleDeformableAttention
from mmcv.ops.multi_scale_deform_attn import MultiScaleDeformableAttnFunction
from mmengine.model import xavier_init
from torch import Tensor, nn

from mmdet.registry import MODELS
from mmdet_ksdetr.models.ks_detr.ks_triple_attention import ks_teacher_streams

__all__ = ['KSMultiScaleDeformableTripleAttention', 'streams_kernel_call']


@MODELS.register_module()
class KSMultiScaleDeformableTripleAttention(MultiScaleDeformableAttention):
    """Deformable self-attention with KS-DETR teacher streams (v0: shared sampling locations).

    Args: as mmcv's ``MultiScaleDeformableAttention`` (``batch_first`` must be True), plus
        ``mode`` (``'triple'``, ``'dual_share_v'``, ``'dual_share_a'``).

    Teacher parameters: ``teacher_attention_weights`` (Linear C -> heads * L * P, share_v) and
    ``teacher_value_proj`` (Linear C -> C, share_a). As in the release, whose transformer
    ``init_weights`` overwrites the intended zero init, both get xavier-uniform weights and
    zero biases.

    Shapes: ``query``/``teacher_query``/``query_pos`` (B, N, C); ``reference_points``
    (B, N, L, 2); returns (B, N, C) without ``teacher_query``, else a list of 1 + T tensors.
    """

    def __init__(self, *args, mode: str = 'triple', **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not self.batch_first:
            raise ValueError('KSMultiScaleDeformableTripleAttention needs batch_first=True')
        self.mode = mode
        self.teacher_streams = ks_teacher_streams(mode)
        if 'share_v' in self.teacher_streams:
            self.teacher_attention_weights = nn.Linear(
                self.embed_dims, self.num_heads * self.num_levels * self.num_points)
        if 'share_a' in self.teacher_streams:
            self.teacher_value_proj = nn.Linear(self.embed_dims, self.value_proj.out_features)
        self.init_weights()

    def init_weights(self) -> None:
        super().init_weights()  # student part, exactly mmcv's
        for name in ('teacher_attention_weights', 'teacher_value_proj'):
            if hasattr(self, name):  # absent while mmcv's __init__ calls init_weights
                xavier_init(getattr(self, name), distribution='uniform', bias=0.)

    def forward(self, query: Tensor, key: Optional[Tensor] = None,
                value: Optional[Tensor] = None, identity: Optional[Tensor] = None,
                query_pos: Optional[Tensor] = None, key_padding_mask: Optional[Tensor] = None,
                reference_points: Optional[Tensor] = None,
                spatial_shapes: Optional[Tensor] = None,
                level_start_index: Optional[Tensor] = None,
                teacher_query: Optional[Tensor] = None, **kwargs):
        if teacher_query is None:
            return super().forward(
                query, key=key, value=value, identity=identity, query_pos=query_pos,
                key_padding_mask=key_padding_mask, reference_points=reference_points,
                spatial_shapes=spatial_shapes, level_start_index=level_start_index, **kwargs)
        if value is not None and value is not query:
            raise ValueError('KS deformable triple attention is a self-attention: value must '
                             'be the query (or None)')
        if reference_points.shape[-1] != 2:
            raise ValueError('KS deformable triple attention is an encoder self-attention and '
                             'expects 2-D reference points')
        return self._streams(query, teacher_query, identity, query_pos, key_padding_mask,
                             reference_points, spatial_shapes, level_start_index)

    def _project_values(self, proj: nn.Linear, x: Tensor, key_padding_mask) -> Tensor:
        v = proj(x)
        if key_padding_mask is not None:
            v = v.masked_fill(key_padding_mask[..., None], 0.0)
        return v.view(x.shape[0], x.shape[1], self.num_heads, -1)

    def _streams(self, x, x_t, identity, query_pos, key_padding_mask, reference_points,
                 spatial_shapes, level_start_index) -> List[Tensor]:
        B, N, _ = x.shape
        H, L, P = self.num_heads, self.num_levels, self.num_points
        if identity is None:
            identity = x
        q = x if query_pos is None else x + query_pos
        v = self._project_values(self.value_proj, x, key_padding_mask)
        offsets = self.sampling_offsets(q).view(B, N, H, L, P, 2)
        normalizer = torch.stack([spatial_shapes[..., 1], spatial_shapes[..., 0]], -1)
        locations = reference_points[:, :, None, :, None, :] + \
            offsets / normalizer[None, None, None, :, None, :]
        a = self.attention_weights(q).view(B, N, H, L * P).softmax(-1).view(B, N, H, L, P)

        values, weights = [v], [a]
        if 'share_v' in self.teacher_streams:
            q_t = x_t if query_pos is None else x_t + query_pos
            a_t = self.teacher_attention_weights(q_t).view(B, N, H, L * P).softmax(-1)
            values.append(v)
            weights.append(a_t.view(B, N, H, L, P))
        if 'share_a' in self.teacher_streams:
            values.append(self._project_values(self.teacher_value_proj, x_t, key_padding_mask))
            weights.append(a)
        S = len(values)
        if v.is_cuda:
            out = streams_kernel_call(values, weights, locations, spatial_shapes,
                                      level_start_index, self.im2col_step)
        else:
            out = self._streams_shared_sampling(values, weights, locations, spatial_shapes)
        out = self.dropout(self.output_proj(out)) + identity.repeat(S, 1, 1)
        return list(out.split(B, 0))

    def _streams_shared_sampling(self, values: List[Tensor], weights: List[Tensor],
                                 locations: Tensor, spatial_shapes: Tensor) -> Tensor:
        """CPU form of ``MSDA(values[i], S, weights[i])`` for every stream, stacked along the
        batch. All streams share the sampling locations ``S``, and the student and share_v
        streams also share ``V``: each distinct value tensor is bilinearly sampled once
        (``grid_sample`` dominates the cost) and only the weighting is done per stream.
        Same result as ``multi_scale_deformable_attn_pytorch`` on the stacked streams."""
        distinct = []  # value tensors by identity: V (student, share_v) and V^t (share_a)
        for value in values:
            if not any(value is d for d in distinct):
                distinct.append(value)
        samples = sample_value_levels(torch.cat(distinct, 0), spatial_shapes,
                                      locations.repeat(len(distinct), 1, 1, 1, 1, 1))
        samples = samples.split(samples.shape[0] // len(distinct), 0)
        outs = []
        for value, weight in zip(values, weights):
            index = next(i for i, d in enumerate(distinct) if d is value)
            outs.append(weight_value_samples(samples[index], weight))
        return torch.cat(outs, 0)


def streams_kernel_call(values: List[Tensor], weights: List[Tensor], locations: Tensor,
                        spatial_shapes: Tensor, level_start_index: Tensor, im2col_step: int,
                        kernel=MultiScaleDeformableAttnFunction.apply) -> Tensor:
    """Compiled-kernel (CUDA) form of ``MSDA(values[i], S, weights[i])`` for all S streams in
    one kernel call, stacked along the batch; returns (S * B, N, heads * d).

    The kernel needs ``batch % min(batch, step) == 0``, so the step is S times the one mmcv
    uses for B images. ``kernel`` has the signature of ``MultiScaleDeformableAttnFunction.apply``
    (a pure-torch stand-in runs this code on CPU in the tests)."""
    S, B = len(values), values[0].shape[0]
    step = S * min(B, im2col_step)
    return kernel(torch.cat(values, 0), spatial_shapes, level_start_index,
                  locations.repeat(S, 1, 1, 1, 1, 1), torch.cat(weights, 0), step)


def sample_value_levels(value: Tensor, spatial_shapes: Tensor, locations: Tensor) -> Tensor:
    """Bilinear samples of a multi-scale value map at the deformable sampling locations.

    ``value`` (B, sum(h*w), heads, d); ``locations`` (B, N, heads, L, P, 2) in [0, 1] (x, y);
    returns (B * heads, d, N, L * P), zeros outside the map (grid_sample, align_corners=False).
    """
    B, _, H, d = value.shape
    grid = 2 * locations - 1
    sizes = [int(h) * int(w) for h, w in spatial_shapes.tolist()]
    per_level = value.split(sizes, 1)
    samples = []
    for level, (h, w) in enumerate(spatial_shapes.tolist()):
        v = per_level[level].flatten(2).transpose(1, 2).reshape(B * H, d, int(h), int(w))
        g = grid[:, :, :, level].transpose(1, 2).flatten(0, 1)  # (B * heads, N, P, 2)
        samples.append(F.grid_sample(v, g, mode='bilinear', padding_mode='zeros',
                                     align_corners=False))  # (B * heads, d, N, P)
    return torch.stack(samples, -2).flatten(-2)


def weight_value_samples(samples: Tensor, weights: Tensor) -> Tensor:
    """Attention-weighted sum of :func:`sample_value_levels` output.

    ``samples`` (B * heads, d, N, L * P); ``weights`` (B, N, heads, L, P);
    returns (B, N, heads * d)."""
    B, N, H, L, P = weights.shape
    w = weights.transpose(1, 2).reshape(B * H, 1, N, L * P)
    out = (samples * w).sum(-1)  # (B * heads, d, N)
    return out.view(B, -1, N).transpose(1, 2).contiguous()
