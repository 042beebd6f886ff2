"""Decode extra query groups in the same decoder pass as a DETR's own queries.

Distillers decode extra query groups with the student's decoder (DETRDistill's teacher group,
KD-DETR's distillation points): queries that must not interact with the student's own queries.
Decoding each group with a separate ``forward_decoder`` call repeats every per-layer operation
(and its backward); on small inputs that per-call overhead is most of a decoder pass.

:func:`decode_merged` instead concatenates the per-query inputs of all groups along the query
axis, runs ``forward_decoder`` once with a block-diagonal self-attention mask (a query attends
only to queries of its own group; an existing main-group mask such as DINO's denoising mask is
kept inside the main block) and splits the outputs again. Every other decoder operation
(cross-attention, FFN, norms, box refinement) is per query, so each group's outputs equal those
of its separate pass, up to float summation order. Dropout draws different random numbers, as
any second pass would.

This holds only for decoders whose sole interaction between queries is the self-attention
that receives ``attn_mask``; :func:`supports_merged_decoding` accepts exactly mmdet's
DETR / Deformable DETR / Conditional DETR / DAB-DETR / DINO detectors with their stock
decoders. Callers fall back to separate passes otherwise.

Shapes: per-query decoder inputs ``query`` / ``query_pos`` / ``reference_points`` are
(B, N, k); outputs ``hidden_states`` (L, B, N, D) and ``references`` (a list of (B, N, k), an
(L, B, N, k) tensor or one (B, N, k) tensor) are split along N.
"""
import inspect
from contextlib import contextmanager
from typing import Callable, Dict, List, Sequence, Tuple

import torch
from torch import Tensor

__all__ = ['supports_merged_decoding', 'decode_merged', 'mergeable_inputs']

# forward_decoder inputs that hold one entry per query, (B, N, k)
PER_QUERY_INPUTS = ('query', 'query_pos', 'reference_points')
# main-group-only self-attention masks a group drops (it has no denoising queries)
MAIN_ONLY_MASKS = ('dn_mask', 'self_attn_mask')


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


def _block_mask(sizes: Sequence[int], main_mask, device) -> Tensor:
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
def _masked_self_attention(decoder, sizes: Sequence[int]):
    """Give every decoder layer's ``self_attn`` the block-diagonal mask over ``sizes``."""
    total = sum(sizes)
    cache = {}
    originals = []

    def wrap(attn):
        forward = attn.forward
        signature = inspect.signature(forward)

        def masked(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            query = bound.arguments['query']
            if query.shape[1] != total:
                raise RuntimeError(f'merged decoding: self-attention got {query.shape[1]} '
                                   f'queries on dim 1, expected {total} (batch-first)')
            main_mask = bound.arguments.get('attn_mask')
            key = id(main_mask)
            if key not in cache:
                cache[key] = (main_mask, _block_mask(sizes, main_mask, query.device))
            bound.arguments['attn_mask'] = cache[key][1]
            return forward(*bound.args, **bound.kwargs)

        return masked

    for layer in decoder.layers:
        attn = layer.self_attn
        originals.append((attn, vars(attn).get('forward')))
        object.__setattr__(attn, 'forward', wrap(attn))
    try:
        yield
    finally:
        for attn, before in originals:
            if before is not None:
                object.__setattr__(attn, 'forward', before)
            else:
                object.__delattr__(attn, 'forward')


def _split(value, sizes: Sequence[int], axis: int) -> List:
    return list(value.split(list(sizes), dim=axis))


def _split_outputs(outputs: Dict, sizes: Sequence[int]) -> List[Dict]:
    parts = [dict() for _ in sizes]
    for key, value in outputs.items():
        if key == 'hidden_states':
            pieces = _split(value, sizes, 2)
        elif key == 'references' and isinstance(value, (list, tuple)):
            per_entry = [_split(v, sizes, 1) for v in value]
            pieces = [type(value)(entry[g] for entry in per_entry) for g in range(len(sizes))]
        elif key == 'references' and torch.is_tensor(value):
            pieces = _split(value, sizes, 2 if value.dim() == 4 else 1)
        elif value is None:
            pieces = [None] * len(sizes)
        else:
            raise RuntimeError(f'merged decoding: cannot split the decoder output "{key}"')
        for part, piece in zip(parts, pieces):
            part[key] = piece
    return parts


def decode_merged(detector, forward_decoder: Callable, main: Dict,
                  groups: Sequence[Dict]) -> Tuple[Dict, List[Dict]]:
    """Run ``forward_decoder`` (the detector's own, unwrapped) once for the main inputs and
    every group; returns ``(main_outputs, [group_outputs, ...])``, each what a separate
    ``forward_decoder(**inputs)`` call would return.

    Every group must pass :func:`mergeable_inputs` against ``main`` and the detector
    :func:`supports_merged_decoding`; check both first.
    """
    main_n = main['query'].shape[1]
    sizes = [main_n] + [g['query'].shape[1] for g in groups]
    merged = dict(main)
    for key in PER_QUERY_INPUTS:
        if main.get(key) is not None:
            merged[key] = torch.cat([main[key]] + [g[key] for g in groups], dim=1)
    with _masked_self_attention(detector.decoder, sizes):
        outputs = forward_decoder(**merged)
    parts = _split_outputs(outputs, sizes)
    return parts[0], parts[1:]
