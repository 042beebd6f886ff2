"""Distillation losses (registered in mmrazor.registry)."""
from .attention_map_loss import AttentionMapLoss
from .decoupled_kd_loss import DecoupledKDLoss
from .fgd_loss import FGDLoss
from .hungarian_logit_kd_loss import HungarianLogitKDLoss, gather_queries
from .kd_detr_loss import KDDETRLoss
from .pair_kd_loss import PairKDLoss
from .qskd_feature_loss import AttnGuidedFeatureLoss, splat_attention
from .query_contrast_loss import QueryContrastLoss
from .target_aware_feat_loss import TargetAwareFeatLoss, target_aware_masks
from .teacher_group_loss import TeacherGroupLoss

__all__ = ['AttentionMapLoss', 'DecoupledKDLoss', 'FGDLoss', 'HungarianLogitKDLoss',
           'gather_queries', 'KDDETRLoss', 'PairKDLoss', 'AttnGuidedFeatureLoss',
           'splat_attention', 'QueryContrastLoss', 'TargetAwareFeatLoss', 'target_aware_masks',
           'TeacherGroupLoss']
