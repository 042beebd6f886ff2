"""Shared machinery of the KS-DETR detectors (knowledge sharing through triple attention).

A KS detector is a stock mmdet DETR whose **last encoder layer** is replaced by a KS layer
(:mod:`mmdet_ksdetr.models.ks_detr.ks_encoder_layers`). In ``loss()`` only:

1. the GT foreground token mask is built from the batch's boxes
   (:func:`~mmdet_ksdetr.models.ks_detr.ks_gt_mask.gt_foreground_token_mask`);
2. the encoder returns the student memory and T teacher memories (T = 2 for triple attention);
3. the student memory goes through the decoder as usual; the teacher memories go through the
   **same** decoder (same weights, queries, anchors / reference points, positional embeddings,
   DN queries and attention mask, padding mask), batched in one extra call;
4. the head gets the student's L layers as usual and, as named arguments
   ``ks_teacher_hidden_states`` / ``ks_teacher_references`` (dicts keyed by teacher name), each
   teacher pass's last layer, and computes an independent Hungarian matching and the standard
   losses for every group
   (:class:`~mmdet_ksdetr.models.ks_detr.ks_detr_heads.KSHeadMixin`).

The stage order is the one of :mod:`mmdet_ksdetr.models.common.detr_stages`; KS-DETR adds
two training hooks to it (``loss_encoder_inputs``: the mask; ``loss_head_inputs``: the teacher
passes) and a ``forward_encoder`` stage. ``predict()`` and ``_forward()`` are the stock mmdet
code paths: no mask, no GT, no teacher.
A KS checkpoint minus its teacher-only parameters (every parameter with a ``teacher_*`` name
component, see :func:`ks_student_state_dict`) loads into the stock detector.
"""
import copy
from collections import OrderedDict
from typing import Dict, List, Mapping, Optional, Tuple

import torch
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from torch import Tensor

from mmdet_ksdetr.models.common.detr_stages import DETRStagesMixin
from mmdet_ksdetr.models.ks_detr.ks_detr_heads import KSHeadMixin
from mmdet_ksdetr.models.ks_detr.ks_encoder_layers import (KSDeformableDetrTransformerEncoderLayer,
                                                           KSDetrTransformerEncoderLayer,
                                                           build_ks_cfg)
from mmdet_ksdetr.models.ks_detr.ks_gt_mask import gt_foreground_token_mask
from mmdet_ksdetr.models.ks_detr.ks_triple_attention import ks_teacher_streams

__all__ = [
    'is_ks_teacher_key', 'ks_student_state_dict', 'check_ks_embed_dims', 'KSDetectorMixin',
    'KSDeformableDetectorMixin'
]


def is_ks_teacher_key(key: str) -> bool:
    """True for a parameter / buffer used only by the KS teacher streams."""
    return any(part.startswith('teacher_') for part in key.split('.'))


def ks_student_state_dict(state_dict: Mapping[str, Tensor]) -> 'OrderedDict[str, Tensor]':
    """The state dict without the KS teacher-only entries: it loads (strictly) into the stock
    mmdet detector (or our DN baseline) the KS detector was built from."""
    return OrderedDict((k, v) for k, v in state_dict.items() if not is_ks_teacher_key(k))


def _get(cfg, path):
    node = cfg
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def check_ks_embed_dims(encoder=None, decoder=None, bbox_head=None, positional_encoding=None,
                        ks_cfg=None) -> None:
    """Raise a ``ValueError`` naming every config entry when the embedding dims given in the
    configs disagree (KS-DETR feeds the encoder memories of all streams through one decoder and
    one head, so they must all be equal)."""
    dims = {}
    for name, cfg, path in [
        ('encoder.layer_cfg.self_attn_cfg.embed_dims', encoder,
         ('layer_cfg', 'self_attn_cfg', 'embed_dims')),
        ('encoder.layer_cfg.ffn_cfg.embed_dims', encoder, ('layer_cfg', 'ffn_cfg', 'embed_dims')),
        ('decoder.layer_cfg.self_attn_cfg.embed_dims', decoder,
         ('layer_cfg', 'self_attn_cfg', 'embed_dims')),
        ('decoder.layer_cfg.cross_attn_cfg.embed_dims', decoder,
         ('layer_cfg', 'cross_attn_cfg', 'embed_dims')),
        ('decoder.layer_cfg.ffn_cfg.embed_dims', decoder, ('layer_cfg', 'ffn_cfg', 'embed_dims')),
        ('bbox_head.embed_dims', bbox_head, ('embed_dims', )),
        ('ks_cfg.teacher_input.embed_dims', ks_cfg, ('teacher_input', 'embed_dims')),
    ]:
        value = _get(cfg, path)
        if value is not None:
            dims[name] = value
    num_feats = _get(positional_encoding, ('num_feats', ))
    if num_feats is not None:
        dims['2 * positional_encoding.num_feats'] = 2 * num_feats
    if len(set(dims.values())) > 1:
        listing = ', '.join(f'{k}={v}' for k, v in dims.items())
        raise ValueError(f'mismatched embed dims in the KS-DETR config: {listing}. The student '
                         f'and teacher memories share one decoder and head, so set all of them '
                         f'to the same value (positional_encoding.num_feats to half of it).')


class KSDetectorMixin(DETRStagesMixin):
    """KS-DETR training for a single-scale DETR detector (DAB / Conditional / DN-DETR).

    Args:
        ks_cfg (dict, optional): ``mode`` (``'triple'`` (default), ``'dual_share_v'``,
            ``'dual_share_a'``) and ``teacher_input`` (``dict(type='KSSMLP')`` (default) or
            ``dict(type='KSMarkFg')``).
        Other args: those of the stock detector; ``bbox_head.type`` must be a KS head.
    """

    #: encoder layer class that replaces the last encoder layer
    ks_layer_type = KSDetrTransformerEncoderLayer
    #: head type suggested in the error message when the config names a non-KS head
    ks_head_hint = 'a KS head (KSDABDETRHead, KSConditionalDETRHead, ...)'
    #: decoder inputs that are not per image (not repeated for the batched teacher passes)
    ks_shared_decoder_keys = ('spatial_shapes', 'level_start_index', 'dn_mask')
    #: the teacher memories leave forward_encoder beside the student memory
    encoder_side_outputs = ('ks_teacher_memories',)

    def __init__(self, *args, ks_cfg: Optional[dict] = None, **kwargs) -> None:
        self.ks_cfg = build_ks_cfg(ks_cfg)
        self.ks_teacher_names = tuple(f'ks_{s}' for s in ks_teacher_streams(self.ks_cfg['mode']))
        check_ks_embed_dims(kwargs.get('encoder'), kwargs.get('decoder'),
                            kwargs.get('bbox_head'), kwargs.get('positional_encoding'),
                            self.ks_cfg)
        bbox_head = kwargs.get('bbox_head')
        if bbox_head is None:
            raise ValueError(f'{type(self).__name__} needs a bbox_head ({self.ks_head_hint})')
        head_type = bbox_head.get('type')
        head_cls = head_type if isinstance(head_type, type) else MODELS.get(head_type)
        if head_cls is None or not issubclass(head_cls, KSHeadMixin):
            raise ValueError(f'bbox_head.type={head_type!r} cannot take the KS teacher '
                             f'prediction groups in loss(); use {self.ks_head_hint}')
        super().__init__(*args, **kwargs)
        if self.bbox_head.embed_dims != self.embed_dims:
            raise ValueError(f'bbox_head.embed_dims={self.bbox_head.embed_dims} does not match '
                             f'the transformer embed_dims={self.embed_dims}; set them equal')

    def _init_layers(self) -> None:
        super()._init_layers()
        layer_cfg = copy.deepcopy(self.encoder.layer_cfg)
        self.encoder.layers[-1] = self.ks_layer_type(**layer_cfg, ks_cfg=self.ks_cfg)

    def init_weights(self) -> None:
        super().init_weights()
        # after the stock xavier pass over the encoder: the KS-specific initialisations
        for m in self.modules():
            if m is not self and hasattr(m, 'ks_init_weights'):
                m.ks_init_weights()

    # ------------------------------------------------------------------ training only
    def loss_encoder_inputs(self, encoder_inputs: Dict, img_feats: Tuple[Tensor],
                            batch_data_samples: SampleList) -> Dict:
        """``ks_fg_mask`` for ``forward_encoder``: the GT foreground token mask (training)."""
        spatial_shapes = encoder_inputs.get('spatial_shapes')
        if spatial_shapes is None:  # single-scale DETRs flatten img_feats[-1]
            spatial_shapes = [img_feats[-1].shape[-2:]]
        elif len(spatial_shapes) == len(img_feats):
            # the levels pre_transformer flattened, as host ints (reading the device tensor
            # would be a host sync); the mask's shape check guards the assumption
            spatial_shapes = [f.shape[-2:] for f in img_feats]
        return dict(ks_fg_mask=gt_foreground_token_mask(
            batch_data_samples, spatial_shapes, encoder_inputs.get('feat_mask')))

    def loss_head_inputs(self, decoder_inputs: Dict, decoder_outputs: Dict,
                         side_outputs: Dict) -> Dict:
        """The teacher memories through the same decoder (after the student's pass); their
        last layers as ``ks_teacher_hidden_states`` / ``ks_teacher_references`` (dicts keyed by
        teacher name, see :class:`~mmdet_ksdetr.models.ks_detr.ks_detr_heads.KSHeadMixin`)."""
        teacher_outputs = self._ks_teacher_decoder_pass(decoder_inputs,
                                                        side_outputs['ks_teacher_memories'])
        return self._ks_teacher_head_inputs(decoder_outputs, teacher_outputs)

    def forward_encoder(self, ks_fg_mask: Optional[Tensor] = None, **kwargs) -> Dict:
        if ks_fg_mask is None:
            return super().forward_encoder(**kwargs)
        return self._ks_forward_encoder(ks_fg_mask=ks_fg_mask, **kwargs)

    def _ks_forward_encoder(self, feat: Tensor, feat_mask: Tensor, feat_pos: Tensor,
                            ks_fg_mask: Tensor) -> Dict:
        memory, teacher_memories = self.encoder(
            query=feat, query_pos=feat_pos, key_padding_mask=feat_mask, ks_fg_mask=ks_fg_mask)
        return dict(memory=memory, ks_teacher_memories=teacher_memories)

    def _ks_teacher_decoder_pass(self, decoder_inputs_dict: Dict,
                                 memories: List[Tensor]) -> Dict:
        """All teacher memories through the decoder in one call, stacked along the batch."""
        num_t = len(memories)
        batched = {}
        for key, value in decoder_inputs_dict.items():
            if key == 'memory':
                batched[key] = torch.cat(memories, 0)
            elif torch.is_tensor(value) and key not in self.ks_shared_decoder_keys:
                batched[key] = value.repeat(num_t, *([1] * (value.dim() - 1)))
            else:
                batched[key] = value
        return self.forward_decoder(**batched)

    def _ks_teacher_head_inputs(self, student: Dict, teachers: Dict) -> Dict:
        """The last decoder layer of each teacher pass, by teacher name: hidden states
        (1, B, Q, C) and the reference that layer was predicted from, in the format of the
        student's ``references`` for one layer."""
        num_layers, batch_size = student['hidden_states'].shape[:2]
        t_hs = teachers['hidden_states'][-1].split(batch_size, 0)  # T x (B, Q, C)
        t_refs = self._ks_teacher_references(student.get('references'),
                                             teachers.get('references'), num_layers,
                                             batch_size)
        return dict(
            ks_teacher_hidden_states={n: h[None] for n, h in zip(self.ks_teacher_names, t_hs)},
            ks_teacher_references=dict(zip(self.ks_teacher_names, t_refs)))

    def _ks_teacher_references(self, student, teachers, num_layers: int,
                               batch_size: int) -> List:
        """Layered references (L, B, Q, d), entry i used by layer i (DAB-DETR, DN-DETR): each
        teacher's last-layer reference as (1, B, Q, d)."""
        return [r[None] for r in teachers[num_layers - 1].split(batch_size, 0)]


class KSDeformableDetectorMixin(KSDetectorMixin):
    """KS-DETR training for multi-scale deformable detectors (Deformable / DN-Deformable DETR).

    Same as :class:`KSDetectorMixin`; the KS layer uses deformable triple attention (v0) and the
    references are mmdet's list ``[init, inter_1, ...]`` (entry i used by layer i)."""

    ks_layer_type = KSDeformableDetrTransformerEncoderLayer
    ks_head_hint = 'a KS deformable head (KSDeformableDETRHead, KSDNDeformableDETRHead)'

    def __init__(self, *args, **kwargs) -> None:
        if kwargs.get('as_two_stage', False):
            raise ValueError('KS-DETR does not support two-stage Deformable DETR (the teacher '
                             'passes have no proposals): set as_two_stage=False')
        super().__init__(*args, **kwargs)

    def _ks_forward_encoder(self, feat: Tensor, feat_mask: Tensor, feat_pos: Tensor,
                            spatial_shapes: Tensor, level_start_index: Tensor,
                            valid_ratios: Tensor, ks_fg_mask: Tensor) -> Dict:
        memory, teacher_memories = self.encoder(
            query=feat, query_pos=feat_pos, key_padding_mask=feat_mask,
            spatial_shapes=spatial_shapes, level_start_index=level_start_index,
            valid_ratios=valid_ratios, ks_fg_mask=ks_fg_mask)
        return dict(memory=memory, memory_mask=feat_mask, spatial_shapes=spatial_shapes,
                    ks_teacher_memories=teacher_memories)

    def _ks_teacher_references(self, student, teachers, num_layers: int,
                               batch_size: int) -> List:
        """mmdet's reference list ``[init, inter_1, ...]`` (entry i used by layer i): each
        teacher's last-layer reference as a one-entry list."""
        return [[r] for r in teachers[num_layers - 1].split(batch_size, 0)]
