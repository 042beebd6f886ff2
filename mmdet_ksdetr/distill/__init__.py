"""MMRazor distillation for DETRs; every module below registers in ``mmrazor.registry``.

=========================  ===============================================================
``internals/``              what a DETR computed, captured for distillation:
                            :class:`DETRInternals`, :func:`capture_detr`, :class:`QueryGroup`,
                            merged decoding, decoder attention maps
``algorithms/``             the distillers (``DETRDistill``, ``KDDETR``, ``D3ETR``, ``QSKD``,
                            ``DETRFeatureKD``, ``CrossKD``) on one base, ``DETRDistillBase``
``losses/``                 distillation losses, one per file (they compute losses only)
``task_modules/``           the student-to-teacher Hungarian matcher
``tprd.py``                 the TPRD switch every distiller composes (``TPRD``)
``refinement.py``           TPRD's vectorised teacher prediction refinement
``teacher_checkpoint.py``   strict teacher checkpoint loading, student-from-teacher init
=========================  ===============================================================
"""
from . import algorithms, internals, losses, task_modules  # noqa: F401  (registration)
from .tprd import TPRD

__all__ = ['algorithms', 'internals', 'losses', 'task_modules', 'TPRD']
