"""KS-DETR (knowledge sharing through triple attention): the last encoder layer computes a
GT-masked teacher stream that shares the attention map or the values with the student stream;
the extra decoder passes of the teacher streams run in ``loss()`` only. Triple / dual attention,
KS encoder layers, the GT foreground mask, sMLP, the KS heads and detectors.
"""
from .ks_conditional_detr import KSConditionalDETR
from .ks_dab_detr import KSDABDETR
from .ks_deformable_detr import KSDeformableDETR
from .ks_deformable_triple_attention import KSMultiScaleDeformableTripleAttention
from .ks_detr_heads import KSHeadMixin, KSConditionalDETRHead, KSDABDETRHead, KSDeformableDETRHead
from .ks_detr_mixin import (is_ks_teacher_key,
    ks_student_state_dict,
    check_ks_embed_dims,
    KSDetectorMixin,
    KSDeformableDetectorMixin)
from .ks_dn_deformable_detr import KSDNDeformableDETR
from .ks_dn_detr import KSDNDETR
from .ks_dn_detr_heads import KSDNDETRHead, KSDNDeformableDETRHead
from .ks_encoder_layers import (DEFAULT_KS_CFG,
    build_ks_cfg,
    KSDetrTransformerEncoderLayer,
    KSDeformableDetrTransformerEncoderLayer)
from .ks_gt_mask import rasterize_boxes, gt_foreground_token_mask, gt_boxes_of
from .ks_smlp import KSSMLP, KSMarkFg
from .ks_triple_attention import KS_MODES, ks_teacher_streams, KSMultiheadTripleAttention

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
