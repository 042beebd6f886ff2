"""Feature distillation baselines for DETRs: FitNet, MGD and FGD on the neck features.
"""
from .feature_kd import DETRFeatureKD
from .fgd_loss import FGDLoss

__all__ = [
    'DETRFeatureKD',
    'FGDLoss',
]
