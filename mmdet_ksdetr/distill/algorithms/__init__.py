"""Distillation algorithms (registered in mmrazor.registry), all on :class:`DETRDistillBase`."""
from .crosskd import CrossKD
from .d3etr import D3ETR
from .detr_distill import DETRDistill
from .detr_distill_base import DETRDistillBase
from .feature_kd import DETRFeatureKD
from .kd_detr import KDDETR
from .qskd import QSKD
from .tprd_distill_base import TPRDDistillBase  # old name of DETRDistillBase, kept one release

__all__ = ['DETRDistillBase', 'DETRDistill', 'KDDETR', 'D3ETR', 'QSKD', 'DETRFeatureKD',
           'CrossKD', 'TPRDDistillBase']
