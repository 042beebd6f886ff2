"""DAC-DETR (divide the attention layers and conquer): a C-stream in every decoder layer that
skips self-attention, trained with one-to-many assignment and the IoU-aware BCE loss; training
only. Decoders, heads, detectors, assigner and loss.
"""
from . import dac_detector_mixin  # noqa: F401  (registration)
from .dac_decoder import (DACDeformableDetrTransformerDecoder,
                          DACDeformableDetrTransformerDecoderLayer, DACDinoTransformerDecoder)
from .dac_deformable_detr import DACDeformableDETR
from .dac_deformable_detr_head import DACDeformableDETRHead
from .dac_dino import DACDINO
from .dac_dino_head import DACDINOHead
from .dac_head_mixin import DACHeadMixin
from .ia_bce_loss import IABCELoss
from .one_to_many_assigner import OneToManyAssigner, OneToManyAssignResult
from .release_dac_detr import ReleaseDACDETR

__all__ = [
    'DACDeformableDetrTransformerDecoderLayer',
    'DACDeformableDetrTransformerDecoder',
    'DACDinoTransformerDecoder',
    'DACDeformableDETR',
    'DACDeformableDETRHead',
    'DACDINO',
    'DACDINOHead',
    'DACHeadMixin',
    'IABCELoss',
    'OneToManyAssignResult',
    'OneToManyAssigner',
    'ReleaseDACDETR',
]
