"""DETRDistill (Chang et al., ICCV'23) as an MMRazor algorithm (spec detr-distill.md §1, §6)."""
from dataclasses import replace
from typing import Dict, List, Optional

from mmdet.structures.bbox import bbox_xyxy_to_cxcywh
from mmrazor.registry import MODELS

from ..losses.decoupled_kd_loss import decoupled_kd_loss
from ..losses.distill_matcher import DistillHungarianMatcher
from ..losses.hungarian_logit_kd_loss import HungarianLogitKDLoss, gather_queries
from ..losses.query_contrast_loss import QueryContrastLoss
from ..losses.target_aware_feat_loss import TargetAwareFeatLoss
from ..losses.teacher_group_loss import TeacherGroupLoss
from ..refinement import TeacherPredictionRefiner
from .detr_distill_base import DETRDistillBase

__all__ = ['DETRDistill', 'teacher_layer_map']


def teacher_layer_map(num_student_layers: int, num_teacher_layers: int,
                      layer_by_layer: bool = True) -> List[int]:
    """Teacher decoder layer that gives the targets of each student decoder layer.

    Layer-by-layer with equal depths is the identity. With different depths, student layer l
    takes teacher layer ``round((l + 1) * L_t / L_s) - 1``, so the last layers always pair up
    (spec §6.2 suggests ``round(l * L_t / L_s)``, which would not). ``layer_by_layer=False``:
    every student layer learns from the teacher's last layer.
    """
    if num_student_layers < 1 or num_teacher_layers < 1:
        raise ValueError('both decoders need at least one layer')
    if not layer_by_layer:
        return [num_teacher_layers - 1] * num_student_layers
    return [
        min(max(int(round((l + 1) * num_teacher_layers / num_student_layers)) - 1, 0),
            num_teacher_layers - 1) for l in range(num_student_layers)
    ]


@MODELS.register_module()
class DETRDistill(DETRDistillBase):
    """DETRDistill: a DETR student learns from a DETR teacher through (1) Hungarian-matching
    logits distillation (every student query matched one-to-one to a teacher prediction by
    soft-BCE / L1 / GIoU cost, then BCE / L1 / GIoU losses), (2) target-aware feature
    distillation (neck features masked by the teacher's confident, well-localised queries),
    (3) the query-prior "teacher group" (teacher queries decoded by the student) and, in the
    release, (4) an InfoNCE "CL" loss between matched decoder queries. Every decoder layer is
    distilled, layer by layer or from the teacher's last layer.

    Shapes (see :class:`~mmdet_ksdetr.models.detr_internals.DETRInternals`): student and
    teacher may differ in query count (N_s, N_t) and decoder depth (L_s, L_t); they must share
    ``num_classes`` and sigmoid classification heads, and the feature loss needs neck outputs
    of equal shape (e.g. ChannelMapper 256 channels).

    The losses are modules in ``distiller.distill_losses`` (any names containing ``loss``),
    recognised by type: :class:`HungarianLogitKDLoss`, :class:`TargetAwareFeatLoss`,
    :class:`TeacherGroupLoss`, :class:`QueryContrastLoss`; leave one out to switch it off.

    Args:
        layer_by_layer: distill student layer l from teacher layer l (mapped when depths
            differ, :func:`teacher_layer_map`); False: from the teacher's last layer.
        matcher: cost weights of the :class:`DistillHungarianMatcher` (release: 1 / 5 / 2).
        tprd: TPRD (spec dac-detr-and-tprd.md B3): the Hungarian logits distillation matches
            against and learns from the refined teacher predictions
            (:mod:`mmdet_ksdetr.distill.refinement`), with the decoupled class loss (sum over
            matched pairs / (B * N_s); TPRD's class weight is 4.0). The feature loss, the CL
            loss and the teacher group keep the raw teacher.
        teacher_assigner: the teacher-to-GT matcher of TPRD (default focal 2 / L1 5 / GIoU 2).
        **kwargs: :class:`DETRDistillBase` arguments (architecture, teacher, teacher_ckpt,
            distiller, ...).

    Loss keys: ``distill.loss_{cls,bbox,iou}_kd`` / ``distill.loss_feat_kd`` /
    ``distill.loss_cl_kd`` for the last student layer, ``distill.d{l}.*`` for earlier layers,
    ``distill.teacher_group.*`` for the teacher group, ``student.*`` for the GT losses.
    """

    _ROLES = dict(logits=HungarianLogitKDLoss, feat=TargetAwareFeatLoss,
                  teacher_group=TeacherGroupLoss, contrast=QueryContrastLoss)

    def __init__(self, layer_by_layer: bool = True,
                 matcher: dict = dict(cls_cost=1.0, l1_cost=5.0, giou_cost=2.0),
                 tprd: bool = False, teacher_assigner: Optional[dict] = None, **kwargs):
        super().__init__(**kwargs)
        self.layer_by_layer = layer_by_layer
        self.tprd = bool(tprd)
        self.refiner = TeacherPredictionRefiner(teacher_assigner) if self.tprd else None
        self.matcher = DistillHungarianMatcher(**matcher)
        mapped = set(self.distiller.loss_forward_mappings)
        self.roles = {}
        for name, module in self.distiller.distill_losses.items():
            if name in mapped:
                continue
            role = [r for r, cls in self._ROLES.items() if isinstance(module, cls)]
            if not role:
                raise TypeError(
                    f'DETRDistill: distill loss "{name}" ({type(module).__name__}) is neither '
                    f'one of {[c.__name__ for c in self._ROLES.values()]} nor fed by '
                    f'distiller.loss_forward_mappings')
            if role[0] in self.roles:
                raise ValueError(f'DETRDistill: two {self._ROLES[role[0]].__name__} losses '
                                 f'("{self.roles[role[0]]}" and "{name}")')
            self.roles[role[0]] = name
        if not self.roles and not mapped:
            raise ValueError('DETRDistill: distiller.distill_losses is empty; add at least '
                             'one of HungarianLogitKDLoss, TargetAwareFeatLoss, '
                             'TeacherGroupLoss, QueryContrastLoss')
        s_head, t_head = self.student.bbox_head, self.teacher.bbox_head
        for role_name, head in (('student', s_head), ('teacher', t_head)):
            if not getattr(head.loss_cls, 'use_sigmoid', False):
                raise ValueError(
                    f'DETRDistill needs sigmoid classification heads (FocalLoss, as in '
                    f'Deformable / Conditional / DAB-DETR / DINO); the {role_name} head '
                    f'{type(head).__name__} uses a softmax')
        if s_head.num_classes != t_head.num_classes:
            raise ValueError(f'DETRDistill: student has {s_head.num_classes} classes, teacher '
                             f'{t_head.num_classes}; they must predict the same classes')

    def student_group_options(self, teacher_internals) -> Dict:
        """The teacher group is decoded along with the student's own queries (one merged
        decoder pass unless ``TeacherGroupLoss(same_decoder_pass=False)``)."""
        group = self._loss('teacher_group')
        if group is None:
            return {}
        return dict(extra_groups={group.GROUP_NAME: group.extra_group(self.student,
                                                                      teacher_internals)},
                    merge_groups=group.same_decoder_pass)

    def _loss(self, role):
        name = self.roles.get(role)
        return None if name is None else self.distiller.distill_losses[name]

    def compute_distill_losses(self, student_internals, teacher_internals,
                               batch_data_samples) -> Dict:
        s, t = student_internals, teacher_internals
        layers = teacher_layer_map(s.num_layers, t.num_layers, self.layer_by_layer)
        factors = s.img_size_factors()
        t_probs = t.scores()
        kd, pos_labels = t, None  # the targets of the logits distillation
        if self.tprd:
            ref = self.refiner(t.cls_logits, t.bbox_preds, batch_data_samples)
            kd = replace(t, cls_logits=ref.logits, bbox_preds=ref.boxes)
            pos_labels = ref.pos_labels
        kd_probs = kd.scores()
        # teacher boxes clamped to the image in pixels, then normalised again (spec §1)
        t_boxes = bbox_xyxy_to_cxcywh(kd.bboxes_xyxy(clamp=True)) / factors[None, :, None, :]
        logits_kd, feat_kd = self._loss('logits'), self._loss('feat')
        contrast, group = self._loss('contrast'), self._loss('teacher_group')
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
            prefix = '' if l == s.num_layers - 1 else f'd{l}.'
            if logits_kd is not None:
                parts = logits_kd(s.cls_logits[l], s.bbox_preds[l], kd_probs[tl], t_boxes[tl],
                                  s_idx[l], t_idx[l], factors)
                if self.tprd:  # decoupled class distillation over the matched pairs
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
            losses.update(group(self.student, s, t, batch_data_samples, layers))
        return losses
