"""mmdet models added by mmdet_ksdetr (registered in ``mmdet.registry``), one folder per paper.

=============  ========================================================================
``ks_detr/``    KS-DETR: triple / dual attention, KS encoder layers, GT mask, sMLP, heads,
                detectors (``KS*``)
``dac_detr/``   DAC-DETR: C-stream decoders, one-to-many assigner, IoU-aware BCE, heads,
                detectors (``DACDINO``, ``DACDeformableDETR``)
``dn_detr/``    DN-DETR / DN-Deformable-DETR, the KS-DETR baselines (``DNDETR``,
                ``DNDeformableDETR``)
``detrex/``     the released detrex detectors, computed as detrex computes them, for
                release weights (``Detrex*``: DINO / Deformable-DETR heads, Deformable-DETR,
                DAB-DETR, DN-DETR)
``common/``     shared pieces: the DETR stage order (``detr_stages``)
=============  ========================================================================
"""
from mmdet_ksdetr.models import common, dac_detr, dn_detr, ks_detr  # noqa: F401  (registration)
from mmdet_ksdetr.models import detrex  # noqa: F401,E402  (registration; after dn_detr)

__all__ = ['common', 'dac_detr', 'detrex', 'dn_detr', 'ks_detr']
