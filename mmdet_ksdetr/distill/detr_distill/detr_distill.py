"""DETRDistill (Chang et al., ICCV'23) as an MMRazor algorithm."""
from dataclasses import replace
from typing import Dict, List, Optional

from mmdet.structures.bbox import bbox_xyxy_to_cxcywh
from mmrazor.registry import MODELS
from torch import Tensor

from mmdet_ksdetr.distill.core import DETRInternals, own_queries_group
from mmdet_ksdetr.distill.core.detr_distill_base import (DETRDistillBase, layer_prefix,
                                                         teacher_layer_map)
from mmdet_ksdetr.distill.core.distill_matcher import DistillHungarianMatcher
from mmdet_ksdetr.distill.core.hungarian_logit_kd_loss import HungarianLogitKDLoss, gather_queries
from mmdet_ksdetr.distill.detr_distill.query_contrast_loss import QueryContrastLoss
from mmdet_ksdetr.distill.detr_distill.target_aware_feat_loss import TargetAwareFeatLoss
from mmdet_ksdetr.distill.detr_distill.teacher_group_loss import TeacherGroupLoss
from mmdet_ksdetr.distill.tprd.decoupled_kd_loss import decoupled_kd_loss

__all__ = ['DETRDistill', 'teacher_layer_map']


@MODELS.register_module()
class DETRDistill(DETRDistillBase):
    """DETRDistill: a DETR student learns from a DETR teacher through (1) Hungarian-matching
    logits distillation (every student query matched one-to-one to a teacher prediction by
    soft-BCE / L1 / GIoU cost, then BCE / L1 / GIoU losses), (2) target-aware feature
    distillation (neck features masked by the teacher's confident, well-localised queries),
    (3) the query-prior "teacher group" (teacher queries decoded by the student) and, in the
    release, (4) an InfoNCE "CL" loss between matched decoder queries. Every decoder layer is
    distilled, layer by layer or from the teacher's last layer.

    Shapes (see :class:`~mmdet_ksdetr.distill.internals.DETRInternals`): student and
    teacher may differ in query count (N_s, N_t) and decoder depth (L_s, L_t); they must share
    ``num_classes`` and sigmoid classification heads, and the feature loss needs neck outputs
    of equal shape (e.g. ChannelMapper 256 channels).

    The losses are modules in ``distiller.distill_losses``, by name: ``loss_logits_kd``
    (:class:`HungarianLogitKDLoss`), ``loss_feat_kd`` (:class:`TargetAwareFeatLoss`),
    ``loss_teacher_group`` (:class:`TeacherGroupLoss`), ``loss_cl_kd``
    (:class:`QueryContrastLoss`); leave one out to switch it off.

    Args:
        layer_by_layer: distill student layer l from teacher layer l (mapped when depths
            differ, :func:`teacher_layer_map`); False: from the teacher's last layer.
        matcher: cost weights of the :class:`DistillHungarianMatcher` (release: 1 / 5 / 2).
        tprd: TPRD (teacher prediction refinement): the Hungarian logits distillation matches
            against and learns from the refined teacher predictions
            (:mod:`mmdet_ksdetr.distill.tprd.refinement`), with the decoupled class loss (sum over
            matched pairs / (B * N_s); TPRD's class weight is 4.0). The feature loss, the CL
            loss and the teacher group keep the raw teacher.
        teacher_assigner: the teacher-to-GT matcher of TPRD (default focal 2 / L1 5 / GIoU 2).
        clamp_teacher_boxes (bool, optional): clamp the (refined) teacher boxes to the image
            in pixels and normalise them again before the student-teacher matching and the
            L1 / GIoU targets. The DETRDistill release clamps, the TPRD release never does;
            ``None`` (default) follows the release of the mode: clamp unless ``tprd``.
        **kwargs: :class:`DETRDistillBase` arguments (architecture, teacher, teacher_ckpt,
            distiller, ...).

    Loss keys: ``distill.loss_{cls,bbox,iou}_kd`` / ``distill.loss_feat_kd`` /
    ``distill.loss_cl_kd`` for the last student layer, ``distill.d{l}.*`` for earlier layers,
    ``distill.teacher_group.*`` for the teacher group, ``student.*`` for the GT losses.
    """

    LOSSES = dict(loss_logits_kd=HungarianLogitKDLoss, loss_feat_kd=TargetAwareFeatLoss,
                  loss_teacher_group=TeacherGroupLoss, loss_cl_kd=QueryContrastLoss)
    REQUIRED_LOSSES = tuple(LOSSES)
    ALLOWS_MAPPED_LOSSES = True

    def __init__(self, layer_by_layer: bool = True,
                 matcher: dict = dict(cls_cost=1.0, l1_cost=5.0, giou_cost=2.0),
                 clamp_teacher_boxes: Optional[bool] = None, **kwargs):
        super().__init__(**kwargs)
        self.layer_by_layer = layer_by_layer
        if clamp_teacher_boxes is not None and not isinstance(clamp_teacher_boxes, bool):
            raise TypeError(f'DETRDistill: clamp_teacher_boxes must be True, False or None, '
                            f'got {clamp_teacher_boxes!r}')
        self.clamp_teacher_boxes = (not self.tprd) if clamp_teacher_boxes is None \
            else clamp_teacher_boxes
        self.matcher = DistillHungarianMatcher(**matcher)

    def student_groups(self, teacher_internals) -> List:
        """The teacher's queries as the "teacher group", decoded by the student (in its own
        decoder pass)."""
        if 'loss_teacher_group' not in self.losses:
            return []
        return [own_queries_group(TeacherGroupLoss.GROUP_NAME, teacher_internals)]

    def teacher_box_targets(self, teacher: DETRInternals) -> Tensor:
        """(L, B, N, 4) normalised cxcywh teacher box targets: clamped to each image in
        pixels and normalised again when ``clamp_teacher_boxes`` (DETRDistill
        release), else the teacher's boxes as they are (TPRD release)."""
        if not self.clamp_teacher_boxes:
            return teacher.bbox_preds
        factors = teacher.img_size_factors()[None, :, None, :]
        return bbox_xyxy_to_cxcywh(teacher.bboxes_xyxy(clamp=True)) / factors

    def compute_distill_losses(self, student_internals, teacher_internals,
                               batch_data_samples) -> Dict:
        s, t = student_internals, teacher_internals
        layers = self.layer_pairs(s, t, self.layer_by_layer)
        factors = s.img_size_factors()
        t_probs = t.scores()
        targets = self.prediction_targets(t, batch_data_samples)  # TPRD-refined iff tprd
        kd = replace(t, cls_logits=targets.logits, bbox_preds=targets.boxes)
        pos_labels = targets.pos_labels
        kd_probs = kd.scores()
        t_boxes = self.teacher_box_targets(kd)
        logits_kd, feat_kd = self.losses.get('loss_logits_kd'), self.losses.get('loss_feat_kd')
        contrast = self.losses.get('loss_cl_kd')
        group = self.losses.get('loss_teacher_group')
        losses = {}

        if logits_kd is not None or contrast is not None:
            s_idx, t_idx = self.matcher.match(
                s.cls_logits.detach(), s.bbox_preds.detach(), kd_probs[layers],
                t_boxes[layers], factors.expand(s.num_layers, -1, -1))
        if feat_kd is not None:  # one call for every distinct teacher layer
            used = sorted(set(layers))
            feat_losses = feat_kd.forward_layers(
                s.neck_feats, t.neck_feats, t.hidden_states[used], t_probs[used],
                t.bboxes_xyxy()[used],  # unclamped pixel boxes for the quality weights
                [d.gt_instances.bboxes for d in batch_data_samples])
            feat_by_layer = dict(zip(used, feat_losses.unbind(0)))
        if contrast is not None:  # the matched pairs of every layer in one call
            s_q = s.hidden_states.gather(2, s_idx[..., None].expand(
                -1, -1, -1, s.hidden_states.shape[-1]))
            t_hs = t.hidden_states[layers]
            t_q = t_hs.gather(2, t_idx[..., None].expand(-1, -1, -1, t_hs.shape[-1]))
            cl_losses = contrast.forward_layers(s_q.flatten(1, 2), t_q.flatten(1, 2))
        for l, tl in enumerate(layers):
            prefix = layer_prefix(l, s.num_layers)
            if logits_kd is not None:
                parts = logits_kd(s.cls_logits[l], s.bbox_preds[l], kd_probs[tl], t_boxes[tl],
                                  s_idx[l], t_idx[l], factors)
                if pos_labels is not None:  # TPRD: decoupled class KD over the matched pairs
                    dkd = decoupled_kd_loss(gather_queries(s.cls_logits[l], s_idx[l]),
                                            gather_queries(kd.cls_logits[tl], t_idx[l]),
                                            gather_queries(pos_labels[tl], t_idx[l]))
                    parts['loss_cls_kd'] = logits_kd.loss_cls_weight * dkd.sum() / max(
                        s.batch_size * s.num_queries, 1)
                losses.update({prefix + k: v for k, v in parts.items()})
            if feat_kd is not None:
                losses[prefix + 'loss_feat_kd'] = feat_by_layer[tl]
            if contrast is not None:
                losses[prefix + 'loss_cl_kd'] = cl_losses[l]
        if group is not None:
            losses.update(group(self.student.bbox_head, self.group_of(s, group.GROUP_NAME), t,
                                batch_data_samples, layers))
        return losses
