"""Distillation task modules: matchers between student and teacher predictions (registered in
``mmrazor.registry.TASK_UTILS``).

=========================  ====================================================
``distill_matcher.py``      :class:`DistillHungarianMatcher`, :func:`soft_bce_cost`
=========================  ====================================================
"""
from .distill_matcher import DistillHungarianMatcher, soft_bce_cost

__all__ = ['DistillHungarianMatcher', 'soft_bce_cost']
