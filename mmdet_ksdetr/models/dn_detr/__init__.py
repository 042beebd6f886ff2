"""DN-DETR and DN-Deformable-DETR (query denoising): the KS-DETR baselines mmdet lacks.
Denoising query generator, head and detector mixins, detectors.
"""
from .denoising_detector_mixin import DenoisingDetectorMixin
from .denoising_head_mixin import DenoisingHeadMixin
from .dn_deformable_detr import DNDeformableDETR
from .dn_detr import DNDETR
from .dn_detr_head import DNDETRHead
from .dn_query_generator import DnQueryGenerator

__all__ = [
    'DenoisingDetectorMixin',
    'DenoisingHeadMixin',
    'DNDeformableDETR',
    'DNDETR',
    'DNDETRHead',
    'DnQueryGenerator',
]
