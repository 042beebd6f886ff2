"""dense_heads of mmdet_ksdetr (registered in mmdet.registry)."""
from .dac_deformable_detr_head import DACDeformableDETRHead
from .dac_dino_head import DACDINOHead
from .dac_head_mixin import DACHeadMixin
from .denoising_head_mixin import DenoisingHeadMixin
from .dn_detr_head import DNDETRHead
from .ks_detr_heads import KSHeadMixin, KSConditionalDETRHead, KSDABDETRHead, KSDeformableDETRHead
from .ks_dn_detr_heads import KSDNDETRHead, KSDNDeformableDETRHead

__all__ = ['DACDeformableDETRHead', 'DACDINOHead', 'DACHeadMixin', 'DenoisingHeadMixin',
           'DNDETRHead', 'KSHeadMixin', 'KSConditionalDETRHead', 'KSDABDETRHead',
           'KSDeformableDETRHead', 'KSDNDETRHead', 'KSDNDeformableDETRHead']
