"""Pieces shared by several papers' models.

=============================  ==========================================================
``detr_stages.py``              the DETR stage order, written once (``DETRStagesMixin``,
                                ``prepare_decoder``, ``forward_transformer``, ``detr_loss``)
``detrex_heads.py``             ``DetrexDeformableDETRHead``, ``DetrexDINOHead``: mmdet's
                                heads with detrex's ``inverse_sigmoid`` clamp (1e-3)
``detrex_deformable_detr.py``   ``DetrexDeformableDETR``: mmdet's Deformable DETR with
                                detrex's box-refinement clamp in the decoder
``detrex_dab_*.py``             ``DetrexDABDETR``, ``DetrexDNDETR``: DAB / DN-DETR with
                                detrex's anchor update (KS-DETR and detrex releases)
=============================  ==========================================================
"""
from mmdet_ksdetr.models.common.detr_stages import (DETRStagesMixin, detr_loss,
                                                    forward_transformer, loss_head_inputs,
                                                    pre_decoder_takes_samples, prepare_decoder)
from mmdet_ksdetr.models.common.detrex_dab_decoder import DetrexDABDetrTransformerDecoder
from mmdet_ksdetr.models.common.detrex_dab_detr import (DetrexDABDecoderMixin, DetrexDABDETR,
                                                        DetrexDNDETR)
from mmdet_ksdetr.models.common.detrex_deformable_detr import (
    DetrexDeformableDETR, DetrexDeformableDetrTransformerDecoder)
from mmdet_ksdetr.models.common.detrex_heads import DetrexDeformableDETRHead, DetrexDINOHead

__all__ = ['DETRStagesMixin', 'detr_loss', 'forward_transformer', 'loss_head_inputs',
           'pre_decoder_takes_samples', 'prepare_decoder', 'DetrexDABDetrTransformerDecoder',
           'DetrexDABDecoderMixin', 'DetrexDABDETR', 'DetrexDNDETR', 'DetrexDeformableDETR',
           'DetrexDeformableDetrTransformerDecoder', 'DetrexDeformableDETRHead',
           'DetrexDINOHead']
