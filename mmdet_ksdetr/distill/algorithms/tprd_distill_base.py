"""Shared plumbing of the TPRD-enabled DETR distillers (KD-DETR, D3ETR, QSKD, feature KD).

:class:`TPRDDistillBase` extends :class:`DETRDistillBase` (frozen ``eval()`` teacher, one
no-grad teacher forward per step, typed internals) with

* ``tprd``: the switch of TPRD (spec ``dac-detr-and-tprd.md`` B): the teacher's per-layer
  predictions are refined by :func:`~mmdet_ksdetr.distill.refinement.refine_teacher_predictions`
  before they become targets, and the subclass switches its class loss to the decoupled form;
* :meth:`teacher_targets`: the teacher's per-layer GT assignment (Hungarian, focal 2 / L1 5 /
  GIoU 2) and, with ``tprd=True``, the refined logits and boxes, computed once per step;
* ``init_student_from_teacher``: copy named teacher parameters (e.g. ``level_embed``, as
  TPRD's ``merge_weight.py`` does for KD-DETR) into the student after weight init.
"""
import fnmatch
from typing import Optional, Sequence

import torch

from ..refinement import RefinedTeacher, TeacherPredictionRefiner
from .detr_distill_base import DETRDistillBase

__all__ = ['TPRDDistillBase', 'copy_teacher_params_to_student']


def copy_teacher_params_to_student(student, teacher, patterns: Sequence[str]):
    """Copy every teacher parameter/buffer whose name contains one of ``patterns`` (or matches
    it as a glob) into the student parameter of the same name. Returns the copied names."""
    if isinstance(patterns, str):
        patterns = [patterns]
    s_state, t_state = student.state_dict(), teacher.state_dict()
    copied = []
    for name, value in t_state.items():
        if not any(p in name or fnmatch.fnmatch(name, p) for p in patterns):
            continue
        if name not in s_state:
            raise ValueError(f'init_student_from_teacher: teacher "{name}" has no counterpart in '
                           f'the student')
        if s_state[name].shape != value.shape:
            raise ValueError(f'init_student_from_teacher: "{name}" is {tuple(value.shape)} in '
                             f'the teacher but {tuple(s_state[name].shape)} in the student')
        with torch.no_grad():
            s_state[name].copy_(value)
        copied.append(name)
    if not copied:
        raise ValueError(f'init_student_from_teacher: no teacher parameter matches {patterns}')
    return copied


class TPRDDistillBase(DETRDistillBase):
    """:class:`DETRDistillBase` plus the TPRD switch and student-from-teacher init.

    Args:
        tprd (bool): refine the teacher's predictions (TPRD) and use the decoupled class loss.
        teacher_assigner (dict, optional): the teacher-to-GT matcher (mmdet ``TASK_UTILS``
            config, default focal 2 / L1 5 / GIoU 2 as in TPRD).
        init_student_from_teacher (list[str]): teacher parameter names (substrings or globs)
            copied into the student after ``init_weights`` (e.g. ``['level_embed']``).
        **kwargs: :class:`DETRDistillBase` arguments.
    """

    def __init__(self, tprd: bool = False, teacher_assigner: Optional[dict] = None,
                 init_student_from_teacher: Sequence[str] = (), **kwargs):
        super().__init__(**kwargs)
        if not isinstance(tprd, bool):
            raise TypeError(f'{type(self).__name__}: tprd must be True or False, got {tprd!r}')
        self.tprd = tprd
        self.refiner = TeacherPredictionRefiner(teacher_assigner)
        if isinstance(init_student_from_teacher, str):
            init_student_from_teacher = [init_student_from_teacher]
        self.init_student_from_teacher = list(init_student_from_teacher)
        for role, head in (('student', self.student.bbox_head),
                           ('teacher', self.teacher.bbox_head)):
            if not getattr(getattr(head, 'loss_cls', None), 'use_sigmoid', False):
                raise ValueError(f'{type(self).__name__} needs sigmoid classification heads '
                                 f'(FocalLoss: Deformable / Conditional / DAB-DETR / DINO); the '
                                 f'{role} head {type(head).__name__} uses a softmax')
        if self.student.bbox_head.num_classes != self.teacher.bbox_head.num_classes:
            raise ValueError(f'{type(self).__name__}: student has '
                             f'{self.student.bbox_head.num_classes} classes, teacher '
                             f'{self.teacher.bbox_head.num_classes}; they must be the same')

    def init_weights(self):
        super().init_weights()
        if self.init_student_from_teacher:
            copy_teacher_params_to_student(self.student, self.teacher,
                                           self.init_student_from_teacher)

    def teacher_targets(self, teacher_logits, teacher_boxes, batch_data_samples,
                        refine: Optional[bool] = None) -> RefinedTeacher:
        """Teacher targets of every layer: GT assignment always, TPRD refinement when
        ``refine`` (default: ``self.tprd``)."""
        refine = self.tprd if refine is None else refine
        return self.refiner(teacher_logits.detach(), teacher_boxes.detach(), batch_data_samples,
                            refine=refine)
