"""Run a DETR-family detector for one batch and return its :class:`DETRInternals` (and, for a
student, its GT losses from the same pass), extra query groups and attention maps included.

The capture is an explicit method, not a recorder: it runs the detector's public DETR hooks
through the one stage order of :mod:`mmdet_ksdetr.models.common.detr_stages` (``extract_feat``
-> ``pre_transformer`` -> ``forward_encoder`` -> ``pre_decoder`` -> ``forward_decoder`` ->
``bbox_head.loss`` / ``bbox_head``, with the detector's training hooks when it computes the GT
losses), so it sees every intermediate as a return value. Only two things are observed with
PyTorch module hooks, both removed before it returns: the head's outputs inside
``bbox_head.loss`` (so the distillation losses back-propagate through the same head pass as
the GT losses) and, on request, the decoder's attention maps. Nothing is patched on an
instance or a class.

It needs that stage order (mmdet's stock ``forward_transformer`` / ``loss`` or
:class:`~mmdet_ksdetr.models.common.detr_stages.DETRStagesMixin`'s, as every detector of this
library has: KS-DETR and DN detectors distil as teachers and as students); a subclass that
replaces them is refused with a clear error rather than silently run without its additions.
The four hooks themselves may be overridden (DAC-DETR's ``forward_decoder``).

DINO denoising queries (training only) lead the main queries; by default every per-query
tensor of the result is sliced to the matching queries (``keep_denoising=False``).
"""
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Union

import torch
from torch import Tensor

from mmdet_ksdetr.distill.core.attention import DecoderAttentionRecorder
from mmdet_ksdetr.distill.core.query_group import (QueryGroup, decoder_inputs_for, head_forward,
                                                   read_out)
from mmdet_ksdetr.distill.core.structures import DETRInternals
from mmdet_ksdetr.models.common.detr_stages import loss_head_inputs, prepare_decoder

__all__ = ['DETRCapture', 'capture_detr', 'get_detr_internals', 'check_detr']

#: a group, or a function of the main ``forward_decoder`` inputs that returns one (called
#: after ``pre_decoder``, e.g. to draw random queries of the right shape)
GroupSpec = Union[QueryGroup, Callable[[Dict], QueryGroup]]


@dataclass
class DETRCapture:
    """Result of :func:`capture_detr`.

    Attributes:
        internals: the :class:`DETRInternals`, with ``groups`` and ``attention`` filled as
            requested.
        losses: the detector's GT losses (``bbox_head.loss``) when ``loss=True``, else empty.
    """
    internals: DETRInternals
    losses: Dict[str, Tensor] = field(default_factory=dict)


def check_detr(detector, role: str = 'detector') -> None:
    """Raise a one-line TypeError unless ``detector`` is a DETR-family detector."""
    missing = [name for name in ('extract_feat', 'pre_transformer', 'forward_encoder',
                                 'pre_decoder', 'forward_decoder', 'bbox_head')
               if not hasattr(detector, name)]
    if missing:
        raise TypeError(
            f'the {role} ({type(detector).__name__}) is not a DETR-family detector: it lacks '
            f'{", ".join(missing)}. DETR internals need an mmdet DetectionTransformer '
            f'(DETR, DeformableDETR, ConditionalDETR, DABDETR, DINO or a subclass); unwrap DDP '
            f'models (model.module) first.')


def _check_stage_order(detector, loss: bool) -> None:
    """Refuse a detector whose ``forward_transformer`` / ``loss`` are not the one DETR stage
    order (mmdet's stock ones or :mod:`mmdet_ksdetr.models.common.detr_stages`): the capture
    would silently skip what they add."""
    from mmdet.models.detectors import DINO
    from mmdet.models.detectors.base_detr import DetectionTransformer

    from mmdet_ksdetr.models.common.detr_stages import DETRStagesMixin
    cls = type(detector)
    stock_loss = (DetectionTransformer.loss, DETRStagesMixin.loss)
    if loss and cls.loss not in stock_loss:
        raise TypeError(f'{cls.__name__} overrides loss(); DETR distillation needs the stock '
                        f'DetectionTransformer.loss to get GT losses and internals from one '
                        f'pass (add training inputs through the detr_stages hooks instead)')
    stock = (DetectionTransformer.forward_transformer, DINO.forward_transformer,
             DETRStagesMixin.forward_transformer)
    if cls.forward_transformer not in stock:
        raise TypeError(f'{cls.__name__} overrides forward_transformer(); DETR internals need '
                        f'the DETR stage order (override the four DETR hooks instead)')


def _decode(detector, main: Dict, groups: List[QueryGroup]):
    """Main + group decoder outputs: one decoder pass each."""
    inputs = [decoder_inputs_for(detector, main, g) for g in groups]
    main_out = detector.forward_decoder(**main)
    return main_out, [detector.forward_decoder(**g) for g in inputs]


@contextmanager
def _first_output(module):
    """Yields a list that holds ``module``'s first forward output inside the block."""
    outputs = []
    handle = module.register_forward_hook(
        lambda m, args, out: outputs.append(out) if not outputs else None)
    try:
        yield outputs
    finally:
        handle.remove()


def _layer_references(references, num_layers):
    """Per-layer input references as one (L, B, N, k) tensor, whatever the detector returns:
    a list of L + 1 (Deformable/DINO: initial + after each layer), an (L, B, N, k) tensor
    (DAB-DETR) or one (B, N, k) tensor shared by all layers (Conditional DETR)."""
    if references is None:
        return None
    if isinstance(references, (list, tuple)):
        return torch.stack(list(references[:num_layers]))
    if references.dim() == 3:
        return references.unsqueeze(0).expand(num_layers, -1, -1, -1)
    return references[:num_layers]


def _internals(detector, samples, feats, decoder_inputs, head_inputs, outs) -> DETRInternals:
    cls_logits, bbox_preds = outs
    hidden_states = head_inputs['hidden_states']
    dn_meta = head_inputs.get('dn_meta')
    loss_cls = getattr(detector.bbox_head, 'loss_cls', None)
    return DETRInternals(
        cls_logits=cls_logits,
        bbox_preds=bbox_preds,
        hidden_states=hidden_states,
        queries=decoder_inputs.get('query'),
        query_pos=decoder_inputs.get('query_pos'),
        reference_points=_layer_references(head_inputs.get('references'),
                                           hidden_states.shape[0]),
        neck_feats=tuple(feats),
        memory=decoder_inputs.get('memory'),
        memory_mask=decoder_inputs.get('memory_mask'),
        img_shapes=tuple(tuple(int(x) for x in s.img_shape[:2]) for s in samples),
        batch_input_shape=tuple(int(x) for x in samples[0].batch_input_shape),
        use_sigmoid=bool(getattr(loss_cls, 'use_sigmoid', True)),
        num_denoising_queries=int(dn_meta['num_denoising_queries']) if dn_meta else 0,
        dn_meta=dn_meta,
        decoder_inputs=decoder_inputs,
        head_inputs=head_inputs)


def _build_groups(groups: Sequence[GroupSpec], decoder_inputs: Dict) -> List[QueryGroup]:
    built = [g if isinstance(g, QueryGroup) else g(decoder_inputs) for g in groups]
    names = [g.name for g in built]
    if len(set(names)) != len(names):
        raise ValueError(f'query group names must be unique, got {names}')
    return built


def capture_detr(detector, batch_inputs: Tensor, batch_data_samples: List, *,
                 loss: bool = False, groups: Sequence[GroupSpec] = (),
                 attention: Optional[DecoderAttentionRecorder] = None,
                 keep_denoising: bool = False) -> DETRCapture:
    """Run ``detector`` on one batch and capture its internals.

    Args:
        detector: an mmdet DETR-family detector (not a DDP wrapper), in its current mode
            (``eval()`` + ``torch.no_grad()`` for a teacher).
        batch_inputs: (B, 3, H, W) preprocessed images.
        batch_data_samples: their ``DetDataSample`` list (``img_shape``; GT for DINO's
            denoising queries and for ``loss``).
        loss: also compute the GT losses with ``bbox_head.loss`` (the student's ``loss()``).
        groups: extra query groups decoded on this pass's memory by this detector's decoder
            and read out by its head (:class:`QueryGroup` or a function of the main
            ``forward_decoder`` inputs returning one); in ``internals.groups``.
        attention: record the decoder's attention maps (``internals.attention`` for the main
            pass, ``internals.groups[name].attention`` for each group's own pass).
        keep_denoising: keep DINO's denoising queries in the per-query tensors.
    """
    check_detr(detector)
    _check_stage_order(detector, loss)
    feats = detector.extract_feat(batch_inputs)
    decoder_inputs, head_inputs, side_outputs = prepare_decoder(
        detector, feats, batch_data_samples, for_loss=loss)
    built = _build_groups(groups, decoder_inputs)
    with attention.record() if attention is not None else nullcontext() as log:
        main_out, group_outs = _decode(detector, decoder_inputs, built)
    head_inputs.update(main_out)
    losses = {}
    if loss:
        # the detector's own training additions (KS-DETR's teacher passes) after the main pass
        head_inputs.update(loss_head_inputs(detector, decoder_inputs, main_out, side_outputs))
        with _first_output(detector.bbox_head) as head_out:
            losses = detector.bbox_head.loss(**head_inputs, batch_data_samples=batch_data_samples)
        if not head_out:
            raise RuntimeError(f'{type(detector.bbox_head).__name__}.loss did not call the head '
                               f'forward; DETR internals need mmdet\'s head contract')
        outs = head_out[0][0], head_out[0][1]
    else:
        outs = head_forward(detector, head_inputs)
    passes = log.passes() if log is not None else [None] * (1 + len(built))
    internals = _internals(detector, batch_data_samples, feats, decoder_inputs, head_inputs,
                           outs)
    internals.attention = passes[0]
    internals.groups = {g.name: read_out(detector, g, out, attn)
                        for g, out, attn in zip(built, group_outs, passes[1:])}
    if not keep_denoising:
        internals = internals.without_denoising()
    return DETRCapture(internals, losses)


def get_detr_internals(detector, batch_inputs: Tensor, batch_data_samples: List,
                       keep_denoising: bool = False, **options) -> DETRInternals:
    """:func:`capture_detr` without GT losses; returns the :class:`DETRInternals` only."""
    return capture_detr(detector, batch_inputs, batch_data_samples,
                        keep_denoising=keep_denoising, **options).internals
