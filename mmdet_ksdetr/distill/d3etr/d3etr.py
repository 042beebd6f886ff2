"""D3ETR (Chen et al., IJCAI'24) with the optional TPRD refinement of the
teacher predictions."""
from typing import Dict, List, Optional

import torch
from mmrazor.registry import MODELS

from mmdet_ksdetr.distill.core import DecoderAttentionRecorder, own_queries_group, query_kind
from mmdet_ksdetr.distill.d3etr.attention_map_loss import AttentionMapLoss
from mmdet_ksdetr.distill.core.hungarian_logit_kd_loss import gather_queries
from mmdet_ksdetr.distill.core.pair_kd_loss import PairKDLoss
from mmdet_ksdetr.distill.core.distill_matcher import DistillHungarianMatcher
from mmdet_ksdetr.distill.core.detr_distill_base import DETRDistillBase, layer_losses

__all__ = ['D3ETR']


def _sub_matrix(attn, idx):
    """``attn[b][idx[b]][:, idx[b]]`` for attn (B, N, N) and idx (B, M) -> (B, M, M)."""
    rows = gather_queries(attn, idx)  # (B, M, N)
    return rows.gather(2, idx.unsqueeze(1).expand(-1, idx.shape[1], -1))


@MODELS.register_module()
class D3ETR(DETRDistillBase):
    """D3ETR's MixMatcher distillation: decoder predictions and attention maps are distilled
    over two kinds of student/teacher query pairs.

    * **Adaptive matching**: per decoder layer, every student query is Hungarian-matched to a
      teacher prediction (soft-BCE / L1 / GIoU cost 1 / 5 / 2, :class:`DistillHungarianMatcher`);
    * **Fixed matching**: the teacher's own queries are decoded by the student as a separate
      group (no interaction with the student's queries) and pair with the teacher's queries
      index to index.

    For each pair: class (soft BCE) + L1 + GIoU on the predictions (:class:`PairKDLoss`,
    normalised by B * Q), MSE on the decoder self-attention sub-matrix of the pairs and on the
    deformable cross-attention weights of the pairs (:class:`AttentionMapLoss`).

    ``tprd=True``: the teacher's per-layer predictions are refined (TPRD) before matching and as
    targets of both groups, and the class loss becomes the decoupled one (positives: teacher
    queries in the teacher's own layer-l GT assignment). The attention losses use the raw
    attention (TPRD refines predictions only).

    Shapes: student N_s and teacher N_t queries (adaptive pairs: min of the two per image and
    layer; fixed pairs: N_t), equal ``embed_dims``; the cross-attention loss needs the same
    heads / levels / points in both decoders. DINO students: denoising queries are excluded.

    Args:
        layer_by_layer (bool): student layer l learns from teacher layer l (mapped when
            depths differ); False: from the teacher's last layer.
        matcher (dict): :class:`DistillHungarianMatcher` cost weights.
        **kwargs: :class:`DETRDistillBase` arguments (``tprd``, ...).
            ``distiller.distill_losses`` may hold
            ``loss_adaptive`` / ``loss_fixed`` (:class:`PairKDLoss`) and ``loss_self_attn`` /
            ``loss_cross_attn`` (:class:`AttentionMapLoss`); leave one out to switch it off.

    Loss keys: ``distill.{loss_cls,loss_bbox,loss_iou,loss_self_attn,loss_cross_attn}_
    {adaptive,fixed}`` for the last student layer, ``distill.d{l}.*`` for earlier layers.
    """

    LOSSES = dict(loss_adaptive=PairKDLoss, loss_fixed=PairKDLoss,
                  loss_self_attn=AttentionMapLoss, loss_cross_attn=AttentionMapLoss)
    REQUIRED_LOSSES = ('loss_adaptive', 'loss_fixed')

    def __init__(self, layer_by_layer: bool = True,
                 matcher: dict = dict(cls_cost=1.0, l1_cost=5.0, giou_cost=2.0), **kwargs):
        super().__init__(**kwargs)
        self.layer_by_layer = layer_by_layer
        self.matcher = DistillHungarianMatcher(**matcher)
        want_self = 'loss_self_attn' in self.losses
        want_cross = 'loss_cross_attn' in self.losses
        if want_self or want_cross:  # attention maps come back inside the internals
            self.student_attention = DecoderAttentionRecorder(self.student.decoder, want_self,
                                                              want_cross)
            self.teacher_attention = DecoderAttentionRecorder(self.teacher.decoder, want_self,
                                                              want_cross)

    def student_groups(self, teacher_internals) -> List:
        """Fixed matching: the teacher's own queries, decoded by the student."""
        if 'loss_fixed' not in self.losses:
            return []
        return [own_queries_group('fixed', teacher_internals)]

    def _attn_losses(self, s_attn, t_attn, l, tl, s_idx: Optional[torch.Tensor],
                     t_idx: Optional[torch.Tensor], s_offset: int):
        """Self / cross attention losses of student layer l vs teacher layer tl over pairs
        (``None`` index = identity pairing)."""
        out = {}
        if 'loss_self_attn' in self.losses:
            a_s = s_attn.self_attn[l][:, s_offset:, s_offset:]
            a_t = t_attn.self_attn[tl]
            if s_idx is not None:
                a_s, a_t = _sub_matrix(a_s, s_idx), _sub_matrix(a_t, t_idx)
            out['loss_self_attn'] = self.losses['loss_self_attn'](a_s, a_t)
        if 'loss_cross_attn' in self.losses:
            c_s = s_attn.cross_weights[l][:, s_offset:].flatten(2)
            c_t = t_attn.cross_weights[tl].flatten(2)
            if s_idx is not None:
                c_s, c_t = gather_queries(c_s, s_idx), gather_queries(c_t, t_idx)
            out['loss_cross_attn'] = self.losses['loss_cross_attn'](c_s, c_t)
        return out

    # ---------------------------------------------------------------- losses
    def compute_distill_losses(self, student_internals, teacher_internals,
                               batch_data_samples) -> Dict:
        s, t = student_internals, teacher_internals
        layers = self.layer_pairs(s, t, self.layer_by_layer)
        targets = self.prediction_targets(t, batch_data_samples)  # TPRD-refined iff tprd
        if self.student_attention is not None and (s.attention is None or t.attention is None):
            raise RuntimeError('D3ETR: attention maps were not recorded; compute the losses '
                               'through loss() (or teacher_forward() and student_forward())')
        losses = {}
        if 'loss_adaptive' in self.losses:
            losses.update(self._adaptive_losses(s, t, targets, layers))
        if 'loss_fixed' in self.losses:
            query_kind(self.student, s.decoder_inputs)  # a supported, matching variant
            losses.update(self._fixed_losses(self.group_of(s, 'fixed'), t, targets, layers,
                                             s.num_layers, s.img_size_factors()))
        return losses

    def _adaptive_losses(self, s, t, targets, layers) -> Dict:
        """Hungarian-matched pairs of every layer: predictions (+ attention)."""
        factors, (B, C) = s.img_size_factors(), (s.batch_size, s.cls_logits.shape[-1])
        t_logits, t_boxes, pos = targets.logits, targets.boxes, targets.pos_labels
        s_idx, t_idx = self.matcher.match(
            s.cls_logits.detach(), s.bbox_preds.detach(), t_logits[layers].sigmoid(),
            t_boxes[layers], factors.expand(s.num_layers, -1, -1))
        pair_factors = factors[:, None, :].expand(B, s_idx.shape[-1], 4).reshape(-1, 4)
        # the student's DINO denoising queries lead its attention maps; skip them
        s_offset = int(s.dn_meta['num_denoising_queries']) if s.dn_meta else 0
        losses = {}
        for l, tl in enumerate(layers):
            parts = self.losses['loss_adaptive'](
                gather_queries(s.cls_logits[l], s_idx[l]).reshape(-1, C),
                gather_queries(s.bbox_preds[l], s_idx[l]).reshape(-1, 4),
                gather_queries(t_logits[tl], t_idx[l]).reshape(-1, C),
                gather_queries(t_boxes[tl], t_idx[l]).reshape(-1, 4), pair_factors,
                None if pos is None else gather_queries(pos[tl], t_idx[l]).reshape(-1),
                num_queries=B * s.num_queries)
            if self.student_attention is not None:
                parts.update(self._attn_losses(s.attention, t.attention, l, tl, s_idx[l],
                                               t_idx[l], s_offset))
            losses.update(layer_losses(parts, l, s.num_layers, '_adaptive'))
        return losses

    def _fixed_losses(self, out, t, targets, layers, num_layers, factors) -> Dict:
        """The teacher's queries decoded by the student (``out``) against the teacher."""
        B, Nt, C = t.batch_size, t.num_queries, t.cls_logits.shape[-1]
        t_logits, t_boxes, pos = targets.logits, targets.boxes, targets.pos_labels
        pair_factors = factors[:, None, :].expand(B, Nt, 4).reshape(-1, 4)
        losses = {}
        for l, tl in enumerate(layers):
            parts = self.losses['loss_fixed'](
                out.cls_logits[l].reshape(-1, C), out.bbox_preds[l].reshape(-1, 4),
                t_logits[tl].reshape(-1, C), t_boxes[tl].reshape(-1, 4), pair_factors,
                None if pos is None else pos[tl].reshape(-1), num_queries=B * Nt)
            if self.student_attention is not None:
                parts.update(self._attn_losses(out.attention, t.attention, l, tl, None, None, 0))
            losses.update(layer_losses(parts, l, num_layers, '_fixed'))
        return losses
