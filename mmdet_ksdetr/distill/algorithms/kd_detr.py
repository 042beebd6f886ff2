"""KD-DETR (Wang et al., CVPR'24) with the optional TPRD refinement (spec ``detr-distill.md``
§4, ``dac-detr-and-tprd.md`` B3)."""
from typing import Dict

import torch
from mmrazor.registry import MODELS

from ..losses.kd_detr_loss import KDDETRLoss
from ..query_groups import (decode_group, group_decoder_inputs, own_queries_group,
                            query_kind, random_group)
from .detr_distill import teacher_layer_map
from .tprd_distill_base import TPRDDistillBase

__all__ = ['KDDETR']


@MODELS.register_module()
class KDDETR(TPRDDistillBase):
    """KD-DETR: distillation points, i.e. extra query groups fed *identically* to the teacher
    and the student decoders (each group decoded on its own, without self-attention to the
    detection queries), so their predictions correspond index to index and are distilled
    without matching. "General" points are random queries drawn afresh every step; "specific"
    points are the teacher's own queries. Each pair is weighted by the teacher's foreground
    confidence (:class:`~mmdet_ksdetr.distill.losses.KDDETRLoss`).

    With ``tprd=True`` the specific group's targets are the TPRD-refined teacher predictions
    of the corresponding teacher layer (student layer l learns from refined teacher layer l,
    mapped when depths differ: the refinement is per layer), its class loss is the decoupled one (T = 1) with positives from the
    teacher's own per-layer Hungarian assignment, and the weights use the refined logits. The
    general group is unchanged.

    The teacher's predictions for its own queries are its ordinary forward, so the specific
    group costs extra *student* decoder queries; the general group extra student queries and
    one (no-grad) teacher decoder pass. The student's groups share its own decoder pass
    (``same_decoder_pass``).

    Supported student/teacher pairs: single-stage Deformable DETR, DAB-DETR (no patterns), DINO,
    Conditional DETR (see :mod:`mmdet_ksdetr.distill.query_groups`); student and teacher must be
    the same kind with the same ``embed_dims`` and ``num_classes``. DINO: the teacher runs in
    ``eval()`` and has no denoising queries; the student's denoising queries are excluded from
    distillation (they stay supervised by the student's own DN loss) — CDN noise is drawn
    independently per model and per step, so there is nothing index-aligned to distil.

    Shapes: per student layer l, group predictions (B, N, C) / (B, N, 4) against the teacher's
    layer ``teacher_layer_map(l)``; specific N = teacher queries, general N =
    ``num_general_queries``.

    Args:
        num_general_queries (int): random queries per step (release: 300).
        layer_by_layer (bool): student layer l learns from teacher layer l (mapped when depths
            differ); False (default, KD-DETR release): every student layer learns from the
            teacher's last layer. With ``tprd=True`` the specific group is always layer by
            layer; this flag then only concerns the general group.
        same_decoder_pass (bool): the student decodes both groups inside its own decoder
            pass (block-diagonal self-attention, :mod:`mmdet_ksdetr.models.merged_decoding`;
            the same outputs as separate passes, fewer ops); False: one pass per group.
        tprd (bool): the TPRD switch (see above).
        **kwargs: :class:`TPRDDistillBase` / :class:`DETRDistillBase` arguments;
            ``distiller.distill_losses`` holds ``loss_general`` and/or ``loss_specific``
            (:class:`KDDETRLoss`); leave one out to switch that group off.

    Loss keys: ``distill.{loss_cls,loss_bbox,loss_iou}_{general,specific}`` for the last
    student layer, ``distill.d{l}.*`` for earlier layers.
    """

    GROUPS = ('general', 'specific')

    def __init__(self, num_general_queries: int = 300, layer_by_layer: bool = False,
                 same_decoder_pass: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.same_decoder_pass = bool(same_decoder_pass)
        if num_general_queries < 1:
            raise ValueError(f'KDDETR: num_general_queries must be >= 1, got '
                             f'{num_general_queries}')
        self.num_general_queries = int(num_general_queries)
        self.layer_by_layer = bool(layer_by_layer)
        losses = self.distiller.distill_losses
        unknown = [k for k in losses if k not in ('loss_general', 'loss_specific')
                   and k not in self.distiller.loss_forward_mappings]
        if unknown:
            raise ValueError(f'KDDETR: unknown distill losses {unknown}; use the names '
                             f'"loss_general" and "loss_specific" (type KDDETRLoss)')
        self.group_losses = {}
        for group in self.GROUPS:
            name = f'loss_{group}'
            if name in losses:
                if not isinstance(losses[name], KDDETRLoss):
                    raise TypeError(f'KDDETR: distill loss "{name}" must be a KDDETRLoss, got '
                                    f'{type(losses[name]).__name__}')
                self.group_losses[group] = losses[name]
        if not self.group_losses:
            raise ValueError('KDDETR: add "loss_general" and/or "loss_specific" (KDDETRLoss) '
                             'to distiller.distill_losses')

    def student_group_options(self, teacher_internals) -> Dict:
        """The student decodes its distillation-point groups along with its own queries (one
        merged decoder pass where :mod:`~mmdet_ksdetr.models.merged_decoding` allows it, else
        separate passes). The general group's random queries are kept for the teacher's pass
        of the same step."""
        t = teacher_internals
        self._general_group = None
        groups = {}

        def kind_of(main):
            return self._kind_pair(main, t.decoder_inputs)

        if 'specific' in self.group_losses:
            groups['specific'] = lambda main: group_decoder_inputs(
                self.student, main, kind_of(main), own_queries_group(kind_of(main), t))
        if 'general' in self.group_losses:

            def general(main):
                kind = kind_of(main)
                memory = main['memory']
                group = random_group(kind, self.num_general_queries, memory.shape[0],
                                     memory.shape[-1], memory.device)
                self._general_group = group
                return group_decoder_inputs(self.student, main, kind, group)

            groups['general'] = general
        return dict(extra_groups=groups, merge_groups=self.same_decoder_pass)

    def _kinds(self, s, t):
        return self._kind_pair(s.decoder_inputs, t.decoder_inputs)

    def _kind_pair(self, s_inputs, t_inputs):
        kind = query_kind(self.student, s_inputs)
        t_kind = query_kind(self.teacher, t_inputs)
        if kind != t_kind:
            raise ValueError(f'KDDETR: student ({type(self.student).__name__}, "{kind}" queries) '
                             f'and teacher ({type(self.teacher).__name__}, "{t_kind}" queries) '
                             f'must be the same DETR variant to share query groups')
        d_s, d_t = s_inputs['memory'].shape[-1], t_inputs['memory'].shape[-1]
        if d_s != d_t:
            raise ValueError(f'KDDETR: student embed_dims {d_s} != teacher embed_dims {d_t}; '
                             f'shared query groups need equal embed_dims')
        return kind

    def compute_distill_losses(self, student_internals, teacher_internals,
                               batch_data_samples) -> Dict:
        s, t = student_internals, teacher_internals
        kind = self._kinds(s, t)
        layers = teacher_layer_map(s.num_layers, t.num_layers, self.layer_by_layer)
        specific_layers = teacher_layer_map(s.num_layers, t.num_layers,
                                            self.layer_by_layer or self.tprd)
        factors = s.img_size_factors()
        losses = {}

        def add(group, l, parts):
            prefix = '' if l == s.num_layers - 1 else f'd{l}.'
            for key, value in parts.items():
                losses[f'{prefix}{key}_{group}'] = value

        if 'specific' in self.group_losses:
            loss_fn = self.group_losses['specific']
            s_out = decode_group(self.student, s, kind, own_queries_group(kind, t),
                                 name='specific')
            t_logits, t_boxes, pos_labels = t.cls_logits, t.bbox_preds, None
            if self.tprd:
                ref = self.teacher_targets(t_logits, t_boxes, batch_data_samples)
                t_logits, t_boxes, pos_labels = ref.logits, ref.boxes, ref.pos_labels
            for l, tl in enumerate(specific_layers):
                add('specific', l,
                    loss_fn(s_out.cls_logits[l], s_out.bbox_preds[l], t_logits[tl], t_boxes[tl],
                            factors, None if pos_labels is None else pos_labels[tl]))

        if 'general' in self.group_losses:
            loss_fn = self.group_losses['general']
            group = getattr(self, '_general_group', None)
            self._general_group = None
            if group is None or 'general' not in s.group_decoder_outputs:
                group = random_group(kind, self.num_general_queries, s.batch_size,
                                     s.decoder_inputs['memory'].shape[-1], factors.device)
                s_out = decode_group(self.student, s, kind, group)
            else:  # decoded with the student's own pass; the teacher decodes the same group
                s_out = decode_group(self.student, s, kind, group, name='general')
            with torch.no_grad():
                t_out = decode_group(self.teacher, t, kind, group)
            for l, tl in enumerate(layers):
                add('general', l,
                    loss_fn(s_out.cls_logits[l], s_out.bbox_preds[l], t_out.cls_logits[tl],
                            t_out.bbox_preds[tl], factors))
        return losses
