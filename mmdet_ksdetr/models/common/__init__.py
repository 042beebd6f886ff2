"""Modules shared by several papers' release conversions: detrex's DAB / DN-DETR decoder."""
from mmdet_ksdetr.models.common.detrex_dab_decoder import DetrexDABDetrTransformerDecoder
from mmdet_ksdetr.models.common.detrex_dab_detr import (DetrexDABDecoderMixin, DetrexDABDETR,
                                                        DetrexDNDETR)

__all__ = ['DetrexDABDetrTransformerDecoder', 'DetrexDABDecoderMixin', 'DetrexDABDETR',
           'DetrexDNDETR']
