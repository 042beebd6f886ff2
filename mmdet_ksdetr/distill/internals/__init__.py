"""DETR internals for distillation: one typed result, one explicit capture, one query group.

=====================  ===================================================================
``structures.py``      :class:`DETRInternals` (per-layer logits / boxes / hidden states,
                       queries, references, neck features, memory; every field's shape),
                       :class:`DecodedGroup`, :class:`DecoderAttention`
``capture.py``         :func:`capture_detr` / :func:`get_detr_internals`: run a detector's
                       DETR hooks for one batch -> :class:`DETRCapture` (internals, GT losses,
                       groups, attention)
``query_group.py``     :class:`QueryGroup` and :func:`decode_query_group`: extra queries
                       decoded by a detector's decoder and read out by its head
``merged_decoding.py`` groups decoded inside the main decoder pass (block-diagonal
                       self-attention through forward pre-hooks)
``attention.py``       :class:`DecoderAttentionRecorder`: decoder attention maps through
                       forward hooks
=====================  ===================================================================
"""
from .attention import AttentionLog, DecoderAttentionRecorder
from .capture import DETRCapture, capture_detr, check_detr, get_detr_internals
from .merged_decoding import decode_merged, mergeable_inputs, supports_merged_decoding
from .query_group import (QueryGroup, decode_query_group, decoder_inputs_for,
                          own_queries_group, query_kind, random_group, read_out)
from .structures import DecodedGroup, DecoderAttention, DETRInternals

__all__ = [
    'DETRInternals', 'DecodedGroup', 'DecoderAttention', 'DETRCapture', 'capture_detr',
    'get_detr_internals', 'check_detr', 'QueryGroup', 'query_kind', 'random_group',
    'own_queries_group', 'decoder_inputs_for', 'decode_query_group', 'read_out',
    'decode_merged', 'mergeable_inputs', 'supports_merged_decoding',
    'DecoderAttentionRecorder', 'AttentionLog'
]
