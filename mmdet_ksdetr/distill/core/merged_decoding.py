"""Decode extra query groups in the same decoder pass as a DETR's own queries.

Decoding each group with a separate ``forward_decoder`` call repeats every per-layer operation
(and its backward); on small inputs that per-call overhead is most of a decoder pass.
:func:`decode_merged` instead concatenates the per-query inputs of all groups along the query
axis, runs ``forward_decoder`` once while every decoder layer's self-attention gets a
block-diagonal ``attn_mask`` (a forward pre-hook on the attention module, removed afterwards:
a query attends only to queries of its own group; the main group's own mask, e.g. DINO's
denoising mask, is kept inside the main block) and splits the outputs again. Every other
decoder operation (cross-attention, FFN, norms, box refinement) is per query, so each group's
outputs equal those of its separate pass, up to float summation order.

This holds only for decoders whose sole interaction between queries is the self-attention
that receives ``attn_mask``; :func:`supports_merged_decoding` accepts exactly mmdet's
DETR / Deformable DETR / Conditional DETR / DAB-DETR / DINO detectors with their stock
decoders. Callers decode separately otherwise.

Shapes: per-query decoder inputs ``query`` / ``query_pos`` / ``reference_points`` are
(B, N, k); outputs ``hidden_states`` (L, B, N, D) and ``references`` (a list of (B, N, k), an
(L, B, N, k) tensor or one (B, N, k) tensor) are split along N.
"""
from contextlib import contextmanager
from typing import Dict, List, Sequence, Tuple

import torch
from torch import Tensor

from mmdet_ksdetr.distill.core.query_group import MAIN_ONLY_MASKS, PER_QUERY_INPUTS

__all__ = ['supports_merged_decoding', 'decode_merged', 'mergeable_inputs', 'block_mask',
           'block_diagonal_self_attention']


def _stock_classes():
    from mmcv.cnn.bricks.transformer import MultiheadAttention
    from mmdet.models.detectors import (DABDETR, DETR, DINO, ConditionalDETR, DeformableDETR)
    from mmdet.models.layers.transformer import (ConditionalDetrTransformerDecoder,
                                                 DABDetrTransformerDecoder,
                                                 DeformableDetrTransformerDecoder,
                                                 DetrTransformerDecoder,
                                                 DinoTransformerDecoder)
    from mmdet.models.layers.transformer.utils import ConditionalAttention
    forward_decoders = {cls.forward_decoder for cls in (DETR, DeformableDETR, ConditionalDETR,
                                                         DABDETR, DINO)}
    decoders = (DetrTransformerDecoder, DeformableDetrTransformerDecoder,
                DinoTransformerDecoder, ConditionalDetrTransformerDecoder,
                DABDetrTransformerDecoder)
    return forward_decoders, decoders, (MultiheadAttention, ConditionalAttention)


def supports_merged_decoding(detector) -> bool:
    """True when ``detector`` runs one of mmdet's stock ``forward_decoder`` methods on a stock
    decoder whose layers' ``self_attn`` take ``attn_mask`` with batch-first queries (the only
    place where its queries interact)."""
    forward_decoders, decoders, attentions = _stock_classes()
    if getattr(type(detector), 'forward_decoder', None) not in forward_decoders:
        return False
    decoder = getattr(detector, 'decoder', None)
    if type(decoder) not in decoders:
        return False
    for layer in decoder.layers:
        attn = getattr(layer, 'self_attn', None)
        if type(attn) not in attentions or not getattr(attn, 'batch_first', True):
            return False
    return True


def mergeable_inputs(main: Dict, group: Dict) -> bool:
    """Whether ``group`` differs from ``main`` only in per-query tensors (same batch and
    trailing dims) and in main-group-only masks it drops."""
    if set(main) != set(group):
        return False
    for key, value in group.items():
        if key in PER_QUERY_INPUTS:
            ref = main[key]
            if (value is None) != (ref is None):
                return False
            if value is not None and (not torch.is_tensor(value) or value.dim() != 3
                                      or ref.dim() != 3 or value.shape[0] != ref.shape[0]
                                      or value.shape[2] != ref.shape[2]):
                return False
        elif key in MAIN_ONLY_MASKS:
            if value is not None and value is not main[key]:
                return False
        elif value is not main[key]:
            return False
    return True


def block_mask(sizes: Sequence[int], main_mask, device) -> Tensor:
    """(N, N) bool mask, True = may not attend: block-diagonal over the groups, with the main
    group's own mask (``None`` or an (n0, n0) bool mask) in the first block."""
    n = sum(sizes)
    mask = torch.ones(n, n, dtype=torch.bool, device=device)
    start = 0
    for size in sizes:
        mask[start:start + size, start:start + size] = False
        start += size
    if main_mask is not None:
        if main_mask.dtype != torch.bool or main_mask.dim() != 2 or \
                tuple(main_mask.shape) != (sizes[0], sizes[0]):
            raise RuntimeError(f'merged decoding supports a 2-D bool self-attention mask of '
                               f'the main queries ({sizes[0]} x {sizes[0]}), got '
                               f'{main_mask.dtype} {tuple(main_mask.shape)}')
        mask[:sizes[0], :sizes[0]] = main_mask
    return mask


@contextmanager
def block_diagonal_self_attention(decoder, sizes: Sequence[int]):
    """Inside the block, every decoder layer's ``self_attn`` gets the block-diagonal
    ``attn_mask`` over ``sizes`` (forward pre-hooks, removed on exit)."""
    total = sum(sizes)
    cache = {}  # one mask per distinct main mask (the same object for every layer)

    def hook(module, args, kwargs):
        query = kwargs['query'] if 'query' in kwargs else args[0]
        if len(args) > 1 or query.shape[1] != total:
            raise RuntimeError(f'merged decoding: self-attention must get keyword attn_mask '
                               f'and {total} batch-first queries, got {tuple(query.shape)}')
        main_mask = kwargs.get('attn_mask')
        if id(main_mask) not in cache:
            cache[id(main_mask)] = (main_mask, block_mask(sizes, main_mask, query.device))
        return args, dict(kwargs, attn_mask=cache[id(main_mask)][1])

    handles = [layer.self_attn.register_forward_pre_hook(hook, with_kwargs=True)
               for layer in decoder.layers]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _split_outputs(outputs: Dict, sizes: Sequence[int]) -> List[Dict]:
    parts = [dict() for _ in sizes]
    for key, value in outputs.items():
        if key == 'hidden_states':
            pieces = list(value.split(list(sizes), dim=2))
        elif key == 'references' and isinstance(value, (list, tuple)):
            per_entry = [v.split(list(sizes), dim=1) for v in value]
            pieces = [type(value)(entry[g] for entry in per_entry) for g in range(len(sizes))]
        elif key == 'references' and torch.is_tensor(value):
            pieces = list(value.split(list(sizes), dim=2 if value.dim() == 4 else 1))
        elif value is None:
            pieces = [None] * len(sizes)
        else:
            raise RuntimeError(f'merged decoding: cannot split the decoder output "{key}"')
        for part, piece in zip(parts, pieces):
            part[key] = piece
    return parts


def decode_merged(detector, main: Dict, groups: Sequence[Dict]) -> Tuple[Dict, List[Dict]]:
    """Run ``detector.forward_decoder`` once for the main inputs and every group's inputs;
    returns ``(main_outputs, [group_outputs, ...])``, each what a separate
    ``forward_decoder(**inputs)`` call would return.

    Every group must pass :func:`mergeable_inputs` against ``main`` and the detector
    :func:`supports_merged_decoding`; check both first.
    """
    sizes = [main['query'].shape[1]] + [g['query'].shape[1] for g in groups]
    merged = dict(main)
    for key in PER_QUERY_INPUTS:
        if main.get(key) is not None:
            merged[key] = torch.cat([main[key]] + [g[key] for g in groups], dim=1)
    with block_diagonal_self_attention(detector.decoder, sizes):
        outputs = detector.forward_decoder(**merged)
    parts = _split_outputs(outputs, sizes)
    return parts[0], parts[1:]
