"""Distillation task modules: matchers between student and teacher predictions (registered in
``mmrazor.registry.TASK_UTILS`` on import).

=========================  ====================================================
``distill_matcher.py``      :class:`DistillHungarianMatcher`, :func:`soft_bce_cost`
=========================  ====================================================
"""
from ...registration import import_submodules

import_submodules(__name__, __path__)
