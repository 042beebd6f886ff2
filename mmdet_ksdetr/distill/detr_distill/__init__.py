"""DETRDistill: Hungarian-matched logits KD, target-aware feature KD, the teacher query group
(query-prior KD) and the query contrastive term.
"""
from .detr_distill import DETRDistill
from .query_contrast_loss import QueryContrastLoss
from .target_aware_feat_loss import TargetAwareFeatLoss, target_aware_masks
from .teacher_group_loss import TeacherGroupLoss

__all__ = [
    'DETRDistill',
    'QueryContrastLoss',
    'TargetAwareFeatLoss',
    'target_aware_masks',
    'TeacherGroupLoss',
]
