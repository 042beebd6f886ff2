"""Pieces shared by several papers' models.

=============================  ==========================================================
``detrex_heads.py``             ``DetrexDeformableDETRHead``, ``DetrexDINOHead``: mmdet's
                                heads with detrex's ``inverse_sigmoid`` clamp (1e-3)
``detrex_deformable_detr.py``   ``DetrexDeformableDETR``: mmdet's Deformable DETR with
                                detrex's box-refinement clamp in the decoder
=============================  ==========================================================
"""
from mmdet_ksdetr.models.common.detrex_deformable_detr import (
    DetrexDeformableDETR, DetrexDeformableDetrTransformerDecoder)
from mmdet_ksdetr.models.common.detrex_heads import DetrexDeformableDETRHead, DetrexDINOHead

__all__ = ['DetrexDeformableDETR', 'DetrexDeformableDetrTransformerDecoder',
           'DetrexDeformableDETRHead', 'DetrexDINOHead']
