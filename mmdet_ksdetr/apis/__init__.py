"""Inference entry points."""
from mmdet_ksdetr.apis.inferencer import SafeDetInferencer

__all__ = ['SafeDetInferencer']
