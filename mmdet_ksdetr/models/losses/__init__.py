"""losses of mmdet_ksdetr (registered in mmdet.registry)."""
from .ia_bce_loss import IABCELoss

__all__ = ['IABCELoss']
