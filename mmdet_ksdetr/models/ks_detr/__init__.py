"""KS-DETR (knowledge sharing through triple attention): the last encoder layer computes a
GT-masked teacher stream that shares the attention map or the values with the student stream;
the extra decoder passes of the teacher streams run in ``loss()`` only. Triple / dual attention,
KS encoder layers, the GT foreground mask, sMLP, the KS heads and detectors.
"""
from .ks_conditional_detr import KSConditionalDETR
from .ks_dab_detr import KSDABDETR
from .ks_deformable_detr import KSDeformableDETR
from .ks_deformable_triple_attention import KSMultiScaleDeformableTripleAttention
from .ks_detr_heads import KSConditionalDETRHead, KSDABDETRHead, KSDeformableDETRHead, KSHeadMixin
from .ks_detr_mixin import (KSDeformableDetectorMixin, KSDetectorMixin, check_ks_embed_dims,
                            is_ks_teacher_key, ks_student_state_dict)
from .ks_dn_deformable_detr import KSDNDeformableDETR
from .ks_dn_detr import KSDNDETR
from .ks_dn_detr_heads import KSDNDeformableDETRHead, KSDNDETRHead
from .ks_encoder_layers import (DEFAULT_KS_CFG, KSDeformableDetrTransformerEncoderLayer,
                                KSDetrTransformerEncoderLayer, build_ks_cfg)
from .ks_gt_mask import gt_boxes_of, gt_foreground_token_mask, rasterize_boxes
from .ks_smlp import KSSMLP, KSMarkFg
from .ks_triple_attention import KS_MODES, KSMultiheadTripleAttention, ks_teacher_streams

__all__ = [
    'KSConditionalDETR',
    'KSDABDETR',
    'KSDeformableDETR',
    'KSMultiScaleDeformableTripleAttention',
    'KSHeadMixin',
    'KSConditionalDETRHead',
    'KSDABDETRHead',
    'KSDeformableDETRHead',
    'is_ks_teacher_key',
    'ks_student_state_dict',
    'check_ks_embed_dims',
    'KSDetectorMixin',
    'KSDeformableDetectorMixin',
    'KSDNDeformableDETR',
    'KSDNDETR',
    'KSDNDETRHead',
    'KSDNDeformableDETRHead',
    'DEFAULT_KS_CFG',
    'build_ks_cfg',
    'KSDetrTransformerEncoderLayer',
    'KSDeformableDetrTransformerEncoderLayer',
    'rasterize_boxes',
    'gt_foreground_token_mask',
    'gt_boxes_of',
    'KSSMLP',
    'KSMarkFg',
    'KS_MODES',
    'ks_teacher_streams',
    'KSMultiheadTripleAttention',
]
