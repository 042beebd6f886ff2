"""TPRD as one component that every DETR distiller composes.

:class:`TPRD` is the ``tprd=`` switch of :class:`~mmdet_ksdetr.distill.algorithms.
detr_distill_base.DETRDistillBase`: when it is on, a distiller's teacher *prediction* targets
are the refined ones (:func:`~mmdet_ksdetr.distill.tprd.refinement.refine_teacher_predictions`,
vectorised) and its class loss becomes the decoupled one, whose positives (``pos_labels``) come
from the teacher's own per-layer GT assignment. :meth:`TeacherTargets.of` packs both;
when the switch is off it returns the raw teacher and ``pos_labels=None`` (no assignment runs).
A distiller keeps the component as ``self.tprd_targets`` and asks it through
``DETRDistillBase.prediction_targets`` / ``teacher_targets``: TPRD enters an algorithm only
through the targets it returns (``TeacherTargets.refined`` / ``RefinedTeacher.refined`` say
whether they are refined), never through a branch on the switch. Feature and attention losses
never use it (TPRD refines predictions only).
"""
from dataclasses import dataclass
from typing import Optional

from torch import Tensor

from mmdet_ksdetr.distill.tprd.refinement import RefinedTeacher, TeacherPredictionRefiner

__all__ = ['TPRD', 'TeacherTargets']


@dataclass
class TeacherTargets:
    """Teacher prediction targets of every layer.

    Attributes:
        logits: (L, B, N, C) raw or refined teacher logits (no grad).
        boxes: (L, B, N, 4) raw or refined normalised cxcywh boxes (no grad).
        pos_labels: (L, B, N) long class of the GT each teacher query is assigned to (-1 for
            the others) when TPRD is on: the positives of the decoupled class loss; ``None``
            when off (plain class distillation).
    """
    logits: Tensor
    boxes: Tensor
    pos_labels: Optional[Tensor]

    @property
    def refined(self) -> bool:
        """TPRD-refined targets (each teacher layer refined on its own, so a student layer is
        paired with its own teacher layer)."""
        return self.pos_labels is not None

    @classmethod
    def of(cls, refined: Optional[RefinedTeacher], logits: Tensor = None,
           boxes: Tensor = None) -> 'TeacherTargets':
        """The TPRD targets of ``refined``, or the raw ``logits`` / ``boxes`` when ``None``."""
        if refined is None:
            return cls(logits.detach(), boxes.detach(), None)
        return cls(refined.logits, refined.boxes, refined.pos_labels)


class TPRD:
    """The TPRD switch: teacher prediction refinement + decoupled class targets.

    Args:
        enabled (bool): refine the teacher's predictions and use the decoupled class loss.
        teacher_assigner (dict, optional): mmdet ``TASK_UTILS`` config of the teacher-to-GT
            matcher (default focal 2 / L1 5 / GIoU 2, as in TPRD).
        owner (str): the distiller's name, for error messages.

    Calling it returns the :class:`~mmdet_ksdetr.distill.tprd.refinement.RefinedTeacher` of every
    layer (GT assignment always, refinement when ``refine``, default ``enabled``).
    """

    def __init__(self, enabled: bool = False, teacher_assigner: Optional[dict] = None,
                 owner: str = 'distiller'):
        if not isinstance(enabled, bool):
            raise TypeError(f'{owner}: tprd must be True or False, got {enabled!r}')
        self.enabled = enabled
        self.refinement = TeacherPredictionRefiner(teacher_assigner)

    @property
    def assigner(self):
        """The teacher-to-GT matcher (an mmdet assigner)."""
        return self.refinement.assigner

    def __call__(self, logits: Tensor, boxes: Tensor, batch_data_samples,
                 refine: Optional[bool] = None) -> RefinedTeacher:
        refine = self.enabled if refine is None else refine
        return self.refinement(logits.detach(), boxes.detach(), batch_data_samples,
                               refine=refine)

    def prediction_targets(self, logits: Tensor, boxes: Tensor,
                           batch_data_samples) -> TeacherTargets:
        """Refined targets with the decoupled-loss positives when enabled, else the raw
        teacher (``pos_labels=None``, no assignment runs)."""
        if not self.enabled:
            return TeacherTargets.of(None, logits, boxes)
        return TeacherTargets.of(self(logits, boxes, batch_data_samples))
