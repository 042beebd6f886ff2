"""CrossKD for DETRs as the TPRD release runs it (Wang et al., CVPR'24)."""
from typing import Dict

from mmrazor.registry import MODELS

from mmdet_ksdetr.distill.core import (DecodedGroup, DETRInternals, decode_query_group,
                                       own_queries_group)
from mmdet_ksdetr.distill.core.detr_distill_base import DETRDistillBase, layer_losses
from mmdet_ksdetr.distill.core.distill_matcher import DistillHungarianMatcher
from mmdet_ksdetr.distill.core.hungarian_logit_kd_loss import HungarianLogitKDLoss

__all__ = ['CrossKD']


def _embed_dims(detector) -> int:
    dims = getattr(detector, 'embed_dims', None)
    return dims if dims is not None else detector.decoder.embed_dims


@MODELS.register_module()
class CrossKD(DETRDistillBase):
    """CrossKD: the frozen teacher's decoder and head read the *student's* encoder memory
    ("student encoder, teacher decoder" cross predictions), and these learn the teacher's own
    predictions on its own memory. The loss reaches the student only through its memory, i.e.
    its encoder, neck and backbone; the student's decoder and head learn from the GT only.

    Per step: the teacher's ordinary no-grad ``eval()`` forward gives the targets (every
    decoder layer); the teacher's decoder and head then run once more, with autograd on (the
    teacher's parameters stay frozen), on the student's memory with the teacher's own queries
    and reference points and the student's padding mask, spatial shapes, level start index and
    valid ratios (the same images). For every decoder layer l the cross predictions of layer l
    are matched one-to-one to the teacher's layer-l predictions by the distillation Hungarian
    matcher (soft-BCE 1 / L1 5 / GIoU 2; the sigmoid boxes already lie in [0, 1]) and learn
    them through :class:`~mmdet_ksdetr.distill.losses.HungarianLogitKDLoss`: soft-label BCE
    against sigmoid(teacher) summed over pairs and classes, L1 summed over the 4 coordinates
    and ``1 - GIoU``, each divided by B x Q (Q = teacher queries), weights 1 / 5 / 2 on every
    layer.

    Student and teacher must be the same DETR variant with the same embedding dims, number of
    feature levels and decoder layer count (the teacher's decoder reads the student's memory);
    their query counts may differ (the cross pass uses the teacher's queries). The teacher
    runs in ``eval()`` (the release keeps dropout on in both teacher passes). There is no TPRD
    variant (the release has none).

    Cost: one extra teacher decoder + head pass per step, with its backward (to the memory
    only: no teacher parameter gradients are computed).

    Args:
        matcher (dict): cost weights of the :class:`DistillHungarianMatcher` (1 / 5 / 2).
        **kwargs: :class:`DETRDistillBase` arguments; ``distiller.distill_losses`` holds
            ``loss_cross`` (:class:`HungarianLogitKDLoss`, weights 1 / 5 / 2).

    Loss keys: ``distill.loss_{cls,bbox,iou}_kd`` for the last decoder layer,
    ``distill.d{l}.loss_{cls,bbox,iou}_kd`` for the earlier ones.
    """

    LOSSES = dict(loss_cross=HungarianLogitKDLoss)
    REQUIRED_LOSSES = ('loss_cross', )
    SUPPORTS_TPRD = False  # the TPRD release ships no CrossKD variant
    #: the name of the cross query group (the teacher's own queries on the student's memory)
    GROUP_NAME = 'cross'

    def __init__(self, matcher: dict = dict(cls_cost=1.0, l1_cost=5.0, giou_cost=2.0),
                 **kwargs):
        super().__init__(**kwargs)
        self._check_pair()
        self.matcher = DistillHungarianMatcher(**matcher)

    def _check_pair(self):
        """One-line errors for a student and teacher the cross pass cannot join."""
        s, t = self.student, self.teacher
        if type(s) is not type(t):
            raise ValueError(f'CrossKD: student ({type(s).__name__}) and teacher '
                             f'({type(t).__name__}) must be the same DETR variant: the '
                             f'teacher decoder reads the student encoder memory')
        checks = (('embed_dims', _embed_dims(s), _embed_dims(t)),
                  ('num_feature_levels', getattr(s, 'num_feature_levels', 1),
                   getattr(t, 'num_feature_levels', 1)),
                  ('decoder num_layers', s.decoder.num_layers, t.decoder.num_layers))
        for what, s_val, t_val in checks:
            if s_val != t_val:
                raise ValueError(f'CrossKD: student {what} {s_val} != teacher {what} {t_val}; '
                                 f'the teacher decoder reads the student encoder memory, so '
                                 f'set the same {what} in both configs')

    def cross_predictions(self, student: DETRInternals,
                          teacher: DETRInternals) -> DecodedGroup:
        """The teacher's own queries decoded by the teacher's decoder and head on the
        student's memory, with autograd on: (L, B, Q_t, C) logits, (L, B, Q_t, 4) boxes."""
        return decode_query_group(self.teacher, student.decoder_inputs,
                                  own_queries_group(self.GROUP_NAME, teacher))

    def compute_distill_losses(self, student_internals, teacher_internals,
                               batch_data_samples) -> Dict:
        s, t = student_internals, teacher_internals
        cross = self.cross_predictions(s, t)
        L = cross.cls_logits.shape[0]
        factors = s.img_size_factors()
        t_probs = t.scores()
        s_idx, t_idx = self.matcher.match(cross.cls_logits.detach(), cross.bbox_preds.detach(),
                                          t_probs, t.bbox_preds, factors.expand(L, -1, -1))
        losses = {}
        for l in range(L):  # equal depths (checked): cross layer l <- teacher layer l
            parts = self.losses['loss_cross'](cross.cls_logits[l], cross.bbox_preds[l],
                                              t_probs[l], t.bbox_preds[l], s_idx[l], t_idx[l],
                                              factors)
            losses.update(layer_losses(parts, l, L))
        return losses
