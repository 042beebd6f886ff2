"""D3ETR: decoder distillation with matched predictions, self-attention and cross-attention maps.
"""
from .attention_map_loss import AttentionMapLoss
from .d3etr import D3ETR

__all__ = [
    'AttentionMapLoss',
    'D3ETR',
]
