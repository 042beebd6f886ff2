"""Query groups: extra decoder queries decoded by a DETR's decoder and read out by its head.

A :class:`QueryGroup` is a named set of queries (content, positions, reference points) that a
detector decodes on an encoder memory *separately* from its own queries (no self-attention
between the two; a group never has denoising queries) and reads out with its own head. Feeding
the same group to two detectors gives predictions that correspond index to index, so they can
be distilled without matching:

=================================  ========================================================
use                                group
=================================  ========================================================
KD-DETR "specific" points           the teacher's own queries (:func:`own_queries_group`)
KD-DETR "general" points            random queries drawn every step (:func:`random_group`)
D3ETR fixed matching                the teacher's own queries
DETRDistill teacher group           the teacher's own queries, decoded by the student
CrossKD-style cross pass            ``decode_query_group(teacher, s.decoder_inputs, group)``:
                                    the teacher's decoder and head on the student's memory
=================================  ========================================================

:func:`decoder_inputs_for` swaps a group into a detector's own ``forward_decoder`` keyword
arguments (the mmdet hook contract, so nothing depends on class names);
:func:`decode_query_group` decodes and reads out one group; the capture
(:mod:`~mmdet_ksdetr.distill.core.capture`) decodes groups inside the detector's own step.
"""
from dataclasses import dataclass
from typing import Dict, Optional

import torch
from torch import Tensor

from mmdet_ksdetr.distill.core.structures import DecodedGroup, DecoderAttention

__all__ = ['QueryGroup', 'query_kind', 'random_group', 'own_queries_group',
           'decoder_inputs_for', 'decode_query_group', 'head_forward', 'read_out']

KINDS = ('embed', 'anchor', 'dab', 'pos')
# forward_decoder inputs that hold one entry per query, (B, N, k)
PER_QUERY_INPUTS = ('query', 'query_pos', 'reference_points')
# main-group-only self-attention masks a group drops (it has no denoising queries)
MAIN_ONLY_MASKS = ('dn_mask', 'self_attn_mask')


@dataclass
class QueryGroup:
    """A named group of decoder queries (all (B, N, ...), sigmoid-space references).

    Attributes:
        name: the group's name (key of ``DETRInternals.groups``).
        query: (B, N, D) content queries; ``None`` = zeros (DETR / Conditional / DAB-DETR).
        query_pos: (B, N, D) positional queries, or (B, N, 4) un-sigmoided DAB-DETR anchors.
        reference_points: (B, N, 2 or 4) initial references; ``None`` or ignored when the
            decoding detector derives its references from ``query_pos`` (single-stage
            Deformable DETR's ``reference_points_fc``).
    """
    name: str
    query: Optional[Tensor] = None
    query_pos: Optional[Tensor] = None
    reference_points: Optional[Tensor] = None

    @property
    def num_queries(self) -> int:
        for t in (self.query, self.query_pos, self.reference_points):
            if t is not None:
                return t.shape[1]
        raise ValueError(f'query group "{self.name}" holds no tensor')


def query_kind(detector, decoder_inputs: Dict) -> str:
    """Which kind of query the detector's decoder takes: ``embed`` (single-stage Deformable
    DETR: positions map to 2-d references), ``anchor`` (DINO: content + 4-d references),
    ``dab`` (DAB-DETR: 4-d anchors as positions) or ``pos`` (DETR / Conditional DETR)."""
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


def random_group(name: str, kind: str, num: int, batch_size: int, embed_dims: int, device,
                 generator: Optional[torch.Generator] = None) -> QueryGroup:
    """KD-DETR "general sampling": ``num`` random queries of ``kind``, N(0, 1) like a freshly
    initialised ``nn.Embedding`` (the release re-creates ``nn.Embedding(300, 2D)`` every
    iteration), the same for every image."""
    if num < 1:
        raise ValueError(f'random query group: num must be >= 1, got {num}')

    def randn(*shape):
        x = torch.randn(*shape, generator=generator,
                        device=generator.device if generator is not None else device)
        return x.to(device).unsqueeze(0).expand(batch_size, *shape)

    if kind == 'embed':  # one (N, 2D) embedding: positions | content
        query_pos, query = randn(num, 2 * embed_dims).split(embed_dims, -1)
        return QueryGroup(name, query=query, query_pos=query_pos)
    if kind == 'anchor':
        query = randn(num, embed_dims)
        return QueryGroup(name, query=query, reference_points=randn(num, 4).sigmoid())
    if kind == 'dab':
        return QueryGroup(name, query_pos=randn(num, 4))
    if kind == 'pos':
        return QueryGroup(name, query_pos=randn(num, embed_dims))
    raise ValueError(f'unknown query kind {kind!r}; one of {KINDS}')


def own_queries_group(name: str, internals) -> QueryGroup:
    """A detector's own (matching) queries as a group, detached, from its
    :class:`~mmdet_ksdetr.distill.core.structures.DETRInternals`: its content queries,
    positional queries and first-layer references."""

    def det(t):
        return None if t is None else t.detach()

    refs = internals.reference_points
    return QueryGroup(name, query=det(internals.queries), query_pos=det(internals.query_pos),
                      reference_points=None if refs is None else refs[0].detach())


def _checked(detector, group: QueryGroup, key: str, value: Tensor, ref: Tensor) -> Tensor:
    if value is None:
        raise ValueError(f'query group "{group.name}" has no {key}, which '
                         f'{type(detector).__name__}\'s decoder takes (student and teacher '
                         f'must be the same DETR variant)')
    if value.dim() != 3 or value.shape[0] != ref.shape[0] or value.shape[-1] != ref.shape[-1]:
        raise ValueError(f'query group "{group.name}": {key} must be (batch={ref.shape[0]}, N, '
                         f'{ref.shape[-1]}) for {type(detector).__name__}, got '
                         f'{tuple(value.shape)} (the same embed_dims / DETR variant needed)')
    return value.to(ref.dtype)


def decoder_inputs_for(detector, decoder_inputs: Dict, group: QueryGroup) -> Dict:
    """``detector``'s own ``forward_decoder`` keyword arguments (``decoder_inputs``) with
    ``group``'s queries swapped in and the denoising masks dropped."""
    inputs = dict(decoder_inputs)
    query = group.query
    if query is None and 'query' in inputs:  # zero content queries (DETR / DAB / Conditional)
        query = inputs['query'].new_zeros(inputs['query'].shape[0], group.num_queries,
                                          inputs['query'].shape[-1])
    if 'query' in inputs:
        inputs['query'] = _checked(detector, group, 'query', query, inputs['query'])
    if inputs.get('query_pos') is not None:
        inputs['query_pos'] = _checked(detector, group, 'query_pos', group.query_pos,
                                       inputs['query_pos'])
    ref = inputs.get('reference_points')
    if ref is not None:
        if ref.shape[-1] == 2 and hasattr(detector, 'reference_points_fc') and \
                group.query_pos is not None:  # the detector maps positions to references
            inputs['reference_points'] = detector.reference_points_fc(
                inputs['query_pos']).sigmoid()
        else:
            inputs['reference_points'] = _checked(detector, group, 'reference_points',
                                                  group.reference_points, ref)
    for key in MAIN_ONLY_MASKS:
        if key in inputs:
            inputs[key] = None
    return inputs


def head_forward(detector, decoder_outputs: Dict):
    """``(cls_logits, bbox_preds)``, each (L, B, N, ...), of ``detector.bbox_head`` on
    ``forward_decoder`` outputs (``hidden_states`` and, except for plain DETR, ``references``)."""
    args = [decoder_outputs['hidden_states']]
    if decoder_outputs.get('references') is not None:
        args.append(decoder_outputs['references'])
    outs = detector.bbox_head(*args)
    return outs[0], outs[1]


def read_out(detector, group: QueryGroup, decoder_outputs: Dict,
             attention: Optional[DecoderAttention] = None) -> DecodedGroup:
    """A decoded group's ``forward_decoder`` outputs read out by the detector's head."""
    cls_logits, bbox_preds = head_forward(detector, decoder_outputs)
    return DecodedGroup(group, cls_logits, bbox_preds, decoder_outputs['hidden_states'],
                        attention)


def decode_query_group(detector, decoder_inputs: Dict, group: QueryGroup) -> DecodedGroup:
    """Decode ``group`` with ``detector``'s decoder on the memory in ``decoder_inputs`` (any
    detector's ``DETRInternals.decoder_inputs`` of the same variant and width) and read it out
    with ``detector``'s head. Gradients flow where parameters and memory allow (wrap a frozen
    teacher in ``torch.no_grad()``)."""
    outputs = detector.forward_decoder(**decoder_inputs_for(detector, decoder_inputs, group))
    return read_out(detector, group, outputs)
