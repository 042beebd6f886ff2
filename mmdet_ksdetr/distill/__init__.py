"""MMRazor distillation for DETRs, one folder per paper; every module registers in
``mmrazor.registry``.

=================  ====================================================================
``core/``           what every distiller shares: :class:`DETRDistillBase`, the captured DETR
                    internals (:class:`DETRInternals`, :func:`capture_detr`,
                    :class:`QueryGroup`), the distillation matcher, shared losses
``detr_distill/``   DETRDistill (``DETRDistill``)
``kd_detr/``        KD-DETR (``KDDETR``)
``d3etr/``          D3ETR (``D3ETR``)
``qskd/``           QSKD (``QSKD``)
``crosskd/``        CrossKD (``CrossKD``)
``feature_kd/``     FitNet / MGD / FGD (``DETRFeatureKD``)
``tprd/``           the TPRD switch (``TPRD``), teacher refinement, decoupled class KD
=================  ====================================================================
"""
from mmdet_ksdetr.distill import (core, crosskd, d3etr, detr_distill, feature_kd,  # noqa: F401
                                  kd_detr, qskd, tprd)
from mmdet_ksdetr.distill.tprd import TPRD

__all__ = ['core', 'crosskd', 'd3etr', 'detr_distill', 'feature_kd', 'kd_detr', 'qskd', 'tprd',
           'TPRD']
