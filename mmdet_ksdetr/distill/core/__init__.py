"""What every DETR distiller shares: the base algorithm (:class:`DETRDistillBase`), the captured
DETR internals (:class:`DETRInternals`, :func:`capture_detr`, :class:`QueryGroup`), the
student-to-teacher Hungarian matcher, the Hungarian logits and pair KD losses and strict
teacher-checkpoint loading.
"""
from . import teacher_checkpoint  # noqa: F401  (registration)
from .attention import AttentionLog, DecoderAttentionRecorder
from .capture import DETRCapture, capture_detr, check_detr, get_detr_internals
from .detr_distill_base import DETRDistillBase
from .distill_matcher import DistillHungarianMatcher, soft_bce_cost
from .hungarian_logit_kd_loss import HungarianLogitKDLoss, gather_queries
from .pair_kd_loss import PairKDLoss
from .query_group import (QueryGroup, decode_query_group, decoder_inputs_for, own_queries_group,
                          query_kind, random_group, read_out)
from .structures import DecodedGroup, DecoderAttention, DETRInternals

__all__ = [
    'AttentionLog',
    'DecoderAttentionRecorder',
    'DETRCapture',
    'capture_detr',
    'check_detr',
    'get_detr_internals',
    'DETRDistillBase',
    'DistillHungarianMatcher',
    'soft_bce_cost',
    'HungarianLogitKDLoss',
    'gather_queries',
    'PairKDLoss',
    'QueryGroup',
    'decode_query_group',
    'decoder_inputs_for',
    'own_queries_group',
    'query_kind',
    'random_group',
    'read_out',
    'DecodedGroup',
    'DecoderAttention',
    'DETRInternals',
]
