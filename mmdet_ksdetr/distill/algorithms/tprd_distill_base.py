"""Kept for one release: the TPRD switch now lives in every distiller's base
(:class:`~mmdet_ksdetr.distill.algorithms.detr_distill_base.DETRDistillBase`, composing
:class:`~mmdet_ksdetr.distill.tprd.TPRD`); import from there."""
from .detr_distill_base import DETRDistillBase, copy_teacher_params_to_student

#: alias of :class:`DETRDistillBase` (which now takes ``tprd``, ``teacher_assigner`` and
#: ``init_student_from_teacher``)
TPRDDistillBase = DETRDistillBase

__all__ = ['TPRDDistillBase', 'copy_teacher_params_to_student']
