"""Inference entry points."""
from .inferencer import SafeDetInferencer

__all__ = ['SafeDetInferencer']
