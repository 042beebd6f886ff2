"""QSKD: query-selective KD (hard-negative teacher queries) and attention-guided feature
distillation of the encoder memory.
"""
from .qskd import QSKD
from .qskd_feature_loss import AttnGuidedFeatureLoss, splat_attention

__all__ = [
    'QSKD',
    'AttnGuidedFeatureLoss',
    'splat_attention',
]
