"""detectors of mmdet_ksdetr (registered in mmdet.registry)."""
from .dac_deformable_detr import DACDeformableDETR
from .dac_dino import DACDINO
from .denoising_detector_mixin import DenoisingDetectorMixin
from .dn_deformable_detr import DNDeformableDETR
from .dn_detr import DNDETR
from .ks_conditional_detr import KSConditionalDETR
from .ks_dab_detr import KSDABDETR
from .ks_deformable_detr import KSDeformableDETR
from .ks_detr_mixin import (is_ks_teacher_key, ks_student_state_dict, check_ks_embed_dims,
                            KSDetectorMixin, KSDeformableDetectorMixin)
from .ks_dn_deformable_detr import KSDNDeformableDETR
from .ks_dn_detr import KSDNDETR
from .ks_gt_check_hook import KSCheckTrainGTHook

__all__ = ['DACDeformableDETR', 'DACDINO', 'DenoisingDetectorMixin', 'DNDeformableDETR', 'DNDETR',
           'KSConditionalDETR', 'KSDABDETR', 'KSDeformableDETR', 'is_ks_teacher_key',
           'ks_student_state_dict', 'check_ks_embed_dims', 'KSDetectorMixin',
           'KSDeformableDetectorMixin', 'KSDNDeformableDETR', 'KSDNDETR', 'KSCheckTrainGTHook']
