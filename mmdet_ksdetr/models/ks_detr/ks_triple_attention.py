"""Triple (and dual) multi-head self-attention of KS-DETR.

The student computes ``A = softmax(Q K^T / sqrt(d) + M)`` and ``A V`` as usual. Teachers project
the GT-aware input ``x^t`` with their **own** Q/K/V weights and *share* one factor with the
student:

* ``share_v`` stream: ``A^t V`` (teacher attention map, student values),
* ``share_a`` stream: ``A V^t`` (student attention map, teacher values).

All streams go through the student's (shared) ``out_proj``, dropouts and residual. Nothing is
detached, so ``A^t V`` trains the student's ``W_v`` and ``A V^t`` trains its ``W_q``/``W_k``
("knowledge sharing"). Without ``teacher_query`` the module is exactly mmcv's
:class:`~mmcv.cnn.bricks.transformer.MultiheadAttention`, with the same parameter names.
"""
import math
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmcv.cnn.bricks.transformer import MultiheadAttention
from torch import Tensor, nn

from mmdet.registry import MODELS

__all__ = ['KS_MODES', 'ks_teacher_streams', 'KSMultiheadTripleAttention']

#: teacher streams of each KS mode, in output order (after the student stream)
KS_MODES = {
    'triple': ('share_v', 'share_a'),  # TripleAttnQKVShareAV: {AV, A^t V, A V^t}
    'dual_share_v': ('share_v', ),  # DualAttnShareV: {AV, A^t V}
    'dual_share_a': ('share_a', ),  # DualAttnShareA: {AV, A V^t}
}


def ks_teacher_streams(mode: str) -> Tuple[str, ...]:
    """Names of the teacher streams of a KS mode; a clear error for an unknown mode."""
    if mode not in KS_MODES:
        raise ValueError(f'unknown KS-DETR mode {mode!r}: ks_cfg.mode must be one of '
                         f'{sorted(KS_MODES)}')
    return KS_MODES[mode]


def _additive_mask(attn_mask: Optional[Tensor], key_padding_mask: Optional[Tensor],
                   dtype: torch.dtype) -> Optional[Tensor]:
    """Float mask broadcastable to (B, heads, Nq, Nk): -inf where attention is not allowed."""
    out = None
    if key_padding_mask is not None:
        out = torch.zeros(key_padding_mask.shape, dtype=dtype, device=key_padding_mask.device)
        out = out.masked_fill(key_padding_mask.bool(), float('-inf'))[:, None, None, :]
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            am = torch.zeros(attn_mask.shape, dtype=dtype, device=attn_mask.device)
            am = am.masked_fill(attn_mask, float('-inf'))
        else:
            am = attn_mask.to(dtype)
        if am.dim() != 2:
            raise ValueError('KS triple attention supports a 2-D (Nq, Nk) attn_mask only')
        out = am if out is None else out + am
    return out


@MODELS.register_module()
class KSMultiheadTripleAttention(MultiheadAttention):
    """Multi-head self-attention with KS-DETR teacher streams (triple or dual attention).

    Args:
        embed_dims (int): E. num_heads (int): h. Other args as mmcv's ``MultiheadAttention``
            (``batch_first`` must be True, as everywhere in mmdet 3.x).
        mode (str): ``'triple'`` ({AV, A^t V, A V^t}), ``'dual_share_v'`` ({AV, A^t V}) or
            ``'dual_share_a'`` ({AV, A V^t}).

    Teacher parameters: ``teacher_in_proj_weight`` ((2E if share_v) + (E if share_a), E), rows
    ``[W_q^t; W_k^t; W_v^t]`` as present, and ``teacher_in_proj_bias``.

    Shapes: ``query``/``teacher_query``/``query_pos`` (B, N, E), ``key_padding_mask`` (B, N);
    returns (B, N, E) without ``teacher_query``, else a list of 1 + T tensors (B, N, E):
    student first, then the teacher streams in :data:`KS_MODES` order.
    """

    def __init__(self, embed_dims: int, num_heads: int, mode: str = 'triple', **kwargs) -> None:
        super().__init__(embed_dims, num_heads, **kwargs)
        if not self.batch_first:
            raise ValueError('KSMultiheadTripleAttention needs batch_first=True (mmdet 3.x '
                             'DETRs are batch-first)')
        self.mode = mode
        self.teacher_streams = ks_teacher_streams(mode)
        rows = (2 if 'share_v' in self.teacher_streams else 0) + (
            1 if 'share_a' in self.teacher_streams else 0)
        self.teacher_in_proj_weight = nn.Parameter(torch.empty(rows * embed_dims, embed_dims))
        self.teacher_in_proj_bias = nn.Parameter(torch.zeros(rows * embed_dims))
        self.ks_init_weights()

    def ks_init_weights(self) -> None:
        """Xavier-uniform over the packed ``[W_q; W_k; W_v; teacher rows]`` matrix, as the
        release initialises its single (3 + T')E x E ``in_proj_weight``; zero biases."""
        student = self.attn.in_proj_weight
        fan_out = student.shape[0] + self.teacher_in_proj_weight.shape[0]
        bound = math.sqrt(6.0 / (self.embed_dims + fan_out))
        with torch.no_grad():
            student.uniform_(-bound, bound)
            self.teacher_in_proj_weight.uniform_(-bound, bound)
            self.attn.in_proj_bias.zero_()
            self.teacher_in_proj_bias.zero_()

    def forward(self, query: Tensor, key: Optional[Tensor] = None,
                value: Optional[Tensor] = None, identity: Optional[Tensor] = None,
                query_pos: Optional[Tensor] = None, key_pos: Optional[Tensor] = None,
                attn_mask: Optional[Tensor] = None, key_padding_mask: Optional[Tensor] = None,
                teacher_query: Optional[Tensor] = None, **kwargs):
        if teacher_query is None:
            return super().forward(query, key, value, identity, query_pos, key_pos, attn_mask,
                                   key_padding_mask, **kwargs)
        if (key is not None and key is not query) or (value is not None and value is not query):
            raise ValueError('KS triple attention is a self-attention: key and value must be '
                             'the query (or None)')
        if teacher_query.shape != query.shape:
            raise ValueError(f'teacher_query {tuple(teacher_query.shape)} and query '
                             f'{tuple(query.shape)} must have the same shape')
        return self._streams(query, teacher_query, identity, query_pos, key_pos, attn_mask,
                             key_padding_mask)

    def _streams(self, x, x_t, identity, query_pos, key_pos, attn_mask,
                 key_padding_mask) -> List[Tensor]:
        E, h = self.embed_dims, self.num_heads
        B, N, _ = x.shape
        d = E // h
        if identity is None:
            identity = x
        if key_pos is None:
            key_pos = query_pos

        def add(t, p):
            return t if p is None else t + p

        def heads(t):  # (B, N, E) -> (B, h, N, d)
            return t.view(B, N, h, d).transpose(1, 2)

        w, b = self.attn.in_proj_weight, self.attn.in_proj_bias
        tw, tb = self.teacher_in_proj_weight, self.teacher_in_proj_bias
        q = heads(F.linear(add(x, query_pos), w[:E], b[:E]))
        k = heads(F.linear(add(x, key_pos), w[E:2 * E], b[E:2 * E]))
        v = heads(F.linear(x, w[2 * E:], b[2 * E:]))
        # (query, key, value) of each stream: the teacher's own Q/K or V, the student's other
        streams = {'student': (q, k, v)}
        if 'share_v' in self.teacher_streams:  # A^t V
            q_t = heads(F.linear(add(x_t, query_pos), tw[:E], tb[:E]))
            k_t = heads(F.linear(add(x_t, key_pos), tw[E:2 * E], tb[E:2 * E]))
            streams['share_v'] = (q_t, k_t, v)
        if 'share_a' in self.teacher_streams:  # A V^t
            streams['share_a'] = (q, k, heads(F.linear(x_t, tw[-E:], tb[-E:])))
        names = ('student', ) + self.teacher_streams
        mask = _additive_mask(attn_mask, key_padding_mask, x.dtype)
        p_drop = self.attn.dropout if self.training else 0.0
        if p_drop > 0:
            o = self._streams_with_dropout(streams, names, mask, p_drop)
        else:
            # the streams stacked on the batch, (S*B, h, N, d), student first, and
            # softmax(Q K^T / sqrt(d) + M) V fused: blockwise, the N x N maps never stored
            q, k, v = (torch.cat([streams[n][i] for n in names], 0) for i in range(3))
            if mask is not None and mask.dim() == 4:  # (B, 1, Nq or 1, N): for each stream
                mask = mask.repeat(len(names), 1, 1, 1)
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        o = o.transpose(1, 2).reshape(len(names) * B, N, E)
        o = self.dropout_layer(self.proj_drop(self.attn.out_proj(o)))
        return list((o + identity.repeat(len(names), 1, 1)).split(B, 0))

    @staticmethod
    def _streams_with_dropout(streams, names, mask, p_drop) -> Tensor:
        """The streams with attention dropout, (S*B, h, N, d): each attention map is computed
        and dropped out once, so the student and ``share_a`` streams share the same dropped
        map ``A``, as in the release."""
        q, k, v = streams['student']
        B, h, N, d = q.shape
        if mask is not None:  # (B or 1, 1, Nq or 1, N) or (Nq, N) -> (B*h, Nq or 1, N)
            mask = mask.expand(B, h, *mask.shape[-2:]).reshape(B * h, -1, N)

        def flat(t):  # (B, h, N, d') -> (B*h, N, d')
            return t.reshape(B * h, N, -1)

        def attention_map(qh, kh):  # q scaled first, the mask added inside the product
            qh, kt = flat(qh * (1.0 / math.sqrt(d))), flat(kh).transpose(1, 2)
            logits = torch.bmm(qh, kt) if mask is None else torch.baddbmm(mask, qh, kt)
            return F.dropout(logits.softmax(-1), p=p_drop)

        a = attention_map(q, k)
        outs = {}
        if 'share_a' in streams:
            both = torch.bmm(a, flat(torch.cat([v, streams['share_a'][2]], -1)))  # A [V, V^t]
            outs['student'], outs['share_a'] = both.split(d, -1)
        else:
            outs['student'] = torch.bmm(a, flat(v))
        if 'share_v' in streams:
            q_t, k_t, _ = streams['share_v']
            outs['share_v'] = torch.bmm(attention_map(q_t, k_t), flat(v))
        return torch.cat([outs[n] for n in names], 0).view(len(names) * B, h, N, d)
