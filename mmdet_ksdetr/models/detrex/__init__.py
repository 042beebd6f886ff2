"""The released detrex detectors, computed exactly as detrex (and the KS-DETR release built on it)
computes them: mmdet's / this library's detectors with detrex's ``inverse_sigmoid`` clamp
(eps 1e-3, mmdet 1e-5) where references are turned back into logits. They take the weights
that ``mmdet_ksdetr.converters.release`` converts (``configs/detrex/``,
``configs/ks_detr/release/``); state-dict keys are the base detectors' (plus the learnt content
queries of DN-Deformable-DETR).

=========================  ===============================================================
``heads.py``               ``DetrexDeformableDETRHead``, ``DetrexDINOHead``,
                           ``DetrexConditionalDETRHead``: mmdet's heads with detrex's
                           reference clamp
``deformable_detr.py``     ``DetrexDeformableDETR``: mmdet's Deformable DETR with detrex's
                           box-refinement clamp in the decoder
``dab_decoder.py``         ``DetrexDABDetrTransformerDecoder``: DAB-DETR's decoder with
                           detrex's anchor update
``dab_detr.py``            ``DetrexDABDETR``, ``DetrexDNDETR``: DAB-DETR / DN-DETR with that
                           decoder
``dn_deformable_detr.py``  ``DetrexDNDeformableDETR``: DN-Deformable-DETR with learnt
                           content queries and ``DetrexDNDeformableDetrTransformerDecoder``
                           (conditional query scaling, no final norm)
=========================  ===============================================================
"""
from mmdet_ksdetr.models.detrex.dab_decoder import DetrexDABDetrTransformerDecoder
from mmdet_ksdetr.models.detrex.dab_detr import (DetrexDABDecoderMixin, DetrexDABDETR,
                                                 DetrexDNDETR)
from mmdet_ksdetr.models.detrex.deformable_detr import (DetrexDeformableDETR,
                                                        DetrexDeformableDetrTransformerDecoder)
from mmdet_ksdetr.models.detrex.dn_deformable_detr import (
    DetrexDNDeformableDETR, DetrexDNDeformableDetrTransformerDecoder)
from mmdet_ksdetr.models.detrex.heads import (DETREX_REFERENCE_EPS, DetrexConditionalDETRHead,
                                              DetrexDeformableDETRHead, DetrexDINOHead)

__all__ = ['DETREX_REFERENCE_EPS', 'DetrexDABDetrTransformerDecoder', 'DetrexDABDecoderMixin',
           'DetrexDABDETR', 'DetrexDNDETR', 'DetrexDeformableDETR',
           'DetrexDeformableDetrTransformerDecoder', 'DetrexDNDeformableDETR',
           'DetrexDNDeformableDetrTransformerDecoder', 'DetrexDeformableDETRHead',
           'DetrexDINOHead', 'DetrexConditionalDETRHead']
