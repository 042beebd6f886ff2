"""KD-DETR (Wang et al., CVPR'24) with the optional TPRD refinement of the
teacher predictions."""
from typing import Dict, List

import torch
from mmrazor.registry import MODELS

from mmdet_ksdetr.distill.core import (decode_query_group, own_queries_group, query_kind,
                                       random_group)
from mmdet_ksdetr.distill.core.detr_distill_base import DETRDistillBase, layer_losses
from mmdet_ksdetr.distill.kd_detr.kd_detr_loss import KDDETRLoss

__all__ = ['KDDETR']


@MODELS.register_module()
class KDDETR(DETRDistillBase):
    """KD-DETR: distillation points, i.e. extra query groups fed *identically* to the teacher
    and the student decoders (each group decoded on its own, without self-attention to the
    detection queries), so their predictions correspond index to index and are distilled
    without matching. "General" points are random queries drawn afresh every step; "specific"
    points are the teacher's own queries. Each pair is weighted by the teacher's foreground
    confidence (:class:`~mmdet_ksdetr.distill.losses.KDDETRLoss`).

    With ``tprd=True`` the specific group's targets are the TPRD-refined teacher predictions
    of the corresponding teacher layer (student layer l learns from refined teacher layer l,
    mapped when depths differ: the refinement is per layer), its class loss is the decoupled one
    (T = 1) with positives from the teacher's own per-layer Hungarian assignment, and the
    weights use the refined logits. The general group is unchanged.

    The teacher's predictions for its own queries are its ordinary forward, so the specific
    group costs extra *student* decoder queries; the general group extra student queries and
    one (no-grad) teacher decoder pass. The student decodes each group in a decoder pass of its
    own on its memory.

    Supported student/teacher pairs: single-stage Deformable DETR, DAB-DETR (no patterns), DINO,
    Conditional DETR (see :mod:`mmdet_ksdetr.distill.core.query_group`); student and
    teacher must be
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
            differ), as the TPRD release's KD-DETR criteria (Deformable, DAB-DETR, DINO) do
            for both groups: its configs set True. False (default, the KD-DETR paper code's
            choice): every student layer learns from the teacher's last layer. With
            ``tprd=True`` the specific group is always layer by layer; this flag then only
            concerns the general group.
        tprd (bool): the TPRD switch (see above).
        **kwargs: :class:`DETRDistillBase` arguments (``tprd``, ``init_student_from_teacher``);
            ``distiller.distill_losses`` holds ``loss_general`` and/or ``loss_specific``
            (:class:`KDDETRLoss`); leave one out to switch that group off.

    Loss keys: ``distill.{loss_cls,loss_bbox,loss_iou}_{general,specific}`` for the last
    student layer, ``distill.d{l}.*`` for earlier layers.
    """

    LOSSES = dict(loss_general=KDDETRLoss, loss_specific=KDDETRLoss)
    REQUIRED_LOSSES = tuple(LOSSES)

    def __init__(self, num_general_queries: int = 300, layer_by_layer: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        if num_general_queries < 1:
            raise ValueError(f'KDDETR: num_general_queries must be >= 1, got '
                             f'{num_general_queries}')
        self.num_general_queries = int(num_general_queries)
        self.layer_by_layer = bool(layer_by_layer)

    def student_groups(self, teacher_internals) -> List:
        """The distillation points the student decodes in its step: the teacher's own queries
        ("specific") and random queries drawn when the student's decoder inputs are known
        ("general"); the teacher decodes the same general group afterwards."""
        t = teacher_internals

        def specific(main):
            self._kind_pair(main, t.decoder_inputs)
            return own_queries_group('specific', t)

        def general(main):
            kind = self._kind_pair(main, t.decoder_inputs)
            memory = main['memory']
            return random_group('general', kind, self.num_general_queries, memory.shape[0],
                                memory.shape[-1], memory.device)

        builders = dict(specific=specific, general=general)
        return [builders[g] for g in ('specific', 'general') if f'loss_{g}' in self.losses]

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
        self._kind_pair(s.decoder_inputs, t.decoder_inputs)
        factors = s.img_size_factors()
        losses = {}
        if 'loss_specific' in self.losses:  # refined targets (TPRD) pair layer by layer
            loss_fn, s_out = self.losses['loss_specific'], self.group_of(s, 'specific')
            targets = self.prediction_targets(t, batch_data_samples)
            pos = targets.pos_labels
            for l, tl in enumerate(self.layer_pairs(s, t,
                                                    self.layer_by_layer or targets.refined)):
                parts = loss_fn(s_out.cls_logits[l], s_out.bbox_preds[l], targets.logits[tl],
                                targets.boxes[tl], factors, None if pos is None else pos[tl])
                losses.update(layer_losses(parts, l, s.num_layers, '_specific'))
        if 'loss_general' in self.losses:  # the teacher decodes the student's random group
            loss_fn, s_out = self.losses['loss_general'], self.group_of(s, 'general')
            with torch.no_grad():
                t_out = decode_query_group(self.teacher, t.decoder_inputs, s_out.group)
            for l, tl in enumerate(self.layer_pairs(s, t, self.layer_by_layer)):
                parts = loss_fn(s_out.cls_logits[l], s_out.bbox_preds[l], t_out.cls_logits[tl],
                                t_out.bbox_preds[tl], factors)
                losses.update(layer_losses(parts, l, s.num_layers, '_general'))
        return losses
