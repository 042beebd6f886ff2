"""Extra query groups decoded by a DETR's own decoder (KD-DETR distillation points, D3ETR fixed
matching, ...).

A *query group* is a set of decoder queries that is decoded separately from a detector's own
queries (no self-attention between the two), on the detector's own encoder memory, and read
out by the detector's own head. Feeding the *same* group to a student and a teacher gives
predictions that correspond index to index, so they can be distilled without matching.

What a "query" is depends on the DETR variant; :func:`query_kind` tells them apart by the
decoder's keyword arguments (the mmdet hook contract), never by class name:

========== ==================================================== ===========================
kind       detectors                                            group tensors (B, N, ...)
========== ==================================================== ===========================
embed      Deformable DETR (single stage): ``query_embedding``  ``query_embed`` (2D): pos |
           split into ``query_pos`` | ``query``; reference      content; each detector maps
           points = ``reference_points_fc(query_pos)``          pos to its own references
anchor     DINO (and two-stage-free 4-d references)             ``query`` (D) content and
                                                                ``reference_points`` (4,
                                                                sigmoid space)
dab        DAB-DETR: ``query_pos`` are 4-d anchors              ``anchors`` (4, un-sigmoided)
pos        DETR / Conditional DETR: learned ``query_pos``,      ``query_pos`` (D)
           zero content
========== ==================================================== ===========================

DINO's denoising queries are never part of a group (``dn_mask`` is dropped).
"""
import inspect
from dataclasses import dataclass
from typing import Dict, Optional

import torch
from torch import Tensor

__all__ = ['query_kind', 'random_group', 'own_queries_group', 'decode_group', 'read_out_group',
           'GroupOutputs']

KINDS = ('embed', 'anchor', 'dab', 'pos')


@dataclass
class GroupOutputs:
    """Per-layer predictions of a decoded query group: ``cls_logits (L, B, N, C)``,
    ``bbox_preds (L, B, N, 4)`` (normalised cxcywh), ``hidden_states (L, B, N, D)``."""
    cls_logits: Tensor
    bbox_preds: Tensor
    hidden_states: Tensor


def query_kind(detector, decoder_inputs: Dict) -> str:
    """Which kind of query the detector's decoder takes (see the module table)."""
    ref = decoder_inputs.get('reference_points')
    pos = decoder_inputs.get('query_pos')
    if ref is not None and ref.shape[-1] == 2 and pos is not None and hasattr(
            detector, 'reference_points_fc'):
        return 'embed'
    if ref is not None and ref.shape[-1] == 4 and pos is None:
        return 'anchor'
    if ref is None and pos is not None and pos.shape[-1] == 4:
        if getattr(detector, 'num_patterns', 0):
            raise NotImplementedError('query groups for DAB-DETR with num_patterns > 0 are not '
                                      'supported; set num_patterns=0')
        return 'dab'
    if ref is None and pos is not None:
        return 'pos'
    raise NotImplementedError(
        f'{type(detector).__name__}: cannot decode extra query groups for this decoder '
        f'(inputs {sorted(decoder_inputs)}); supported: single-stage Deformable DETR, DINO, '
        f'DAB-DETR, DETR / Conditional DETR. Two-stage Deformable DETR is not supported.')


def random_group(kind: str, num: int, batch_size: int, embed_dims: int, device,
                 generator: Optional[torch.Generator] = None) -> Dict[str, Tensor]:
    """KD-DETR "general sampling": ``num`` random queries, N(0, 1) like a freshly initialised
    ``nn.Embedding`` (the release re-creates ``nn.Embedding(300, 2D)`` every iteration), the
    same for every image."""
    if num < 1:
        raise ValueError(f'random query group: num must be >= 1, got {num}')

    def randn(*shape):
        x = torch.randn(*shape, generator=generator,
                        device=generator.device if generator is not None else device)
        return x.to(device).unsqueeze(0).expand(batch_size, *shape)

    if kind == 'embed':
        return dict(query_embed=randn(num, 2 * embed_dims))
    if kind == 'anchor':
        return dict(query=randn(num, embed_dims), reference_points=randn(num, 4).sigmoid())
    if kind == 'dab':
        return dict(anchors=randn(num, 4))
    if kind == 'pos':
        return dict(query_pos=randn(num, embed_dims))
    raise ValueError(f'unknown query kind {kind!r}; one of {KINDS}')


def own_queries_group(kind: str, internals) -> Dict[str, Tensor]:
    """A detector's own (matching) queries as a group, taken from its
    :class:`~mmdet_ksdetr.models.detr_internals.DETRInternals` (detached). For a teacher this
    is KD-DETR's "specific sampling" and D3ETR's fixed-matching group."""
    if kind == 'embed':
        return dict(query_embed=torch.cat([internals.query_pos, internals.queries], -1).detach())
    if kind == 'anchor':
        return dict(query=internals.queries.detach(),
                    reference_points=internals.reference_points[0].detach())
    if kind == 'dab':
        return dict(anchors=internals.query_pos.detach())
    if kind == 'pos':
        return dict(query_pos=internals.query_pos.detach())
    raise ValueError(f'unknown query kind {kind!r}; one of {KINDS}')


def group_decoder_inputs(detector, decoder_inputs: Dict, kind: str,
                         group: Dict[str, Tensor]) -> Dict:
    """The detector's own ``forward_decoder`` keyword arguments with ``group`` swapped in."""
    inputs = dict(decoder_inputs)
    memory = inputs['memory']
    B, D = memory.shape[0], memory.shape[-1]

    def check(t, name, last):
        if t.dim() != 3 or t.shape[0] != B or t.shape[-1] != last:
            raise ValueError(f'query group "{name}" must be (batch={B}, N, {last}) for '
                             f'{type(detector).__name__}, got {tuple(t.shape)}')
        return t.to(memory.dtype)

    if kind == 'embed':
        embed = check(group['query_embed'], 'query_embed', 2 * D)
        query_pos, query = embed.split(D, -1)
        inputs.update(query=query, query_pos=query_pos,
                      reference_points=detector.reference_points_fc(query_pos).sigmoid())
    elif kind == 'anchor':
        inputs.update(query=check(group['query'], 'query', D),
                      reference_points=check(group['reference_points'], 'reference_points',
                                             4))
    elif kind == 'dab':
        anchors = check(group['anchors'], 'anchors', 4)
        inputs.update(query_pos=anchors, query=anchors.new_zeros(B, anchors.shape[1], D))
    elif kind == 'pos':
        pos = check(group['query_pos'], 'query_pos', D)
        inputs.update(query_pos=pos, query=torch.zeros_like(pos))
    else:
        raise ValueError(f'unknown query kind {kind!r}; one of {KINDS}')
    for key in ('dn_mask', 'self_attn_mask'):
        if key in inputs:
            inputs[key] = None  # a group has no denoising queries
    return inputs


def read_out_group(detector, decoder_outputs: Dict) -> GroupOutputs:
    """A decoded group's ``forward_decoder`` outputs read out by the detector's head."""
    params = inspect.signature(detector.bbox_head.forward).parameters
    outs = detector.bbox_head(**{k: v for k, v in decoder_outputs.items() if k in params})
    return GroupOutputs(outs[0], outs[1], decoder_outputs['hidden_states'])


def decode_group(detector, internals, kind: str, group: Dict[str, Tensor],
                 name: Optional[str] = None) -> GroupOutputs:
    """Decode ``group`` with ``detector``'s decoder on its encoder memory (from ``internals``,
    the same step's :class:`DETRInternals`) and read it out with its head. Gradients flow
    where the detector's parameters and memory allow (wrap a teacher in ``no_grad``).

    ``name``: when ``internals.group_decoder_outputs`` already holds this group (decoded along
    with the detector's own pass, ``record_detr_internals(extra_groups=...)``), only the head
    runs."""
    outputs = internals.group_decoder_outputs.get(name) if name is not None else None
    if outputs is None:
        inputs = group_decoder_inputs(detector, internals.decoder_inputs, kind, group)
        outputs = detector.forward_decoder(**inputs)
    return read_out_group(detector, outputs)
