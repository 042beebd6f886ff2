"""Moved to :mod:`mmdet_ksdetr.distill.internals` (this import path is kept for one release).

``record_detr_internals`` (which replaced methods on the detector) is gone: use
:func:`~mmdet_ksdetr.distill.internals.capture_detr` (``loss=True`` for the GT losses and the
internals of one pass, ``groups=`` for extra query groups).
"""
from mmdet_ksdetr.distill.internals import DETRInternals, capture_detr, get_detr_internals

__all__ = ['DETRInternals', 'capture_detr', 'get_detr_internals']
