"""mmdet models added by mmdet_ksdetr (registered in ``mmdet.registry``), one folder per paper.

=============  ========================================================================
``ks_detr/``    KS-DETR: triple / dual attention, KS encoder layers, GT mask, sMLP, heads,
                detectors (``KS*``)
``dac_detr/``   DAC-DETR: C-stream decoders, one-to-many assigner, IoU-aware BCE, heads,
                detectors (``DACDINO``, ``DACDeformableDETR``)
``dn_detr/``    DN-DETR / DN-Deformable-DETR, the KS-DETR baselines (``DNDETR``,
                ``DNDeformableDETR``)
``common/``     shared pieces: the DETR stage order (``detr_stages``), detrex-exact
                variants for release weights (``Detrex*``)
=============  ========================================================================
"""
from mmdet_ksdetr.models import common, dac_detr, dn_detr, ks_detr  # noqa: F401  (registration)

__all__ = ['common', 'dac_detr', 'dn_detr', 'ks_detr']
