"""Moved to :mod:`mmdet_ksdetr.distill.task_modules.distill_matcher` (this import path is kept
for one release; the registered name ``DistillHungarianMatcher`` is unchanged)."""
from ..task_modules.distill_matcher import DistillHungarianMatcher, soft_bce_cost

__all__ = ['DistillHungarianMatcher', 'soft_bce_cost']
