"""KD-DETR: shared random and teacher query groups decoded by both detectors, with a
per-layer logits / box distillation loss.
"""
from .kd_detr import KDDETR
from .kd_detr_loss import KDDETRLoss

__all__ = [
    'KDDETR',
    'KDDETRLoss',
]
