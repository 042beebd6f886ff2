"""KS-DETR encoder layers: the last encoder layer with teacher streams.

Each stream ``i`` of the triple (or dual) attention output ``x + O_i`` goes through the
**same** LayerNorm / FFN / LayerNorm modules: ``Z_i = LN2(FFN(LN1(x + O_i)))``. ``Z_1`` is the
normal encoder memory; the teacher memories ``[Z_2, Z_3]`` run through the decoder in
``loss()`` only. Without a foreground mask the layer is the stock mmdet layer (same parameter
names), so a KS checkpoint minus its ``teacher_*`` parameters loads into the stock detector.
"""
import copy
from typing import List, Optional, Tuple, Union

import torch
from mmdet.models.layers.transformer import (DeformableDetrTransformerEncoderLayer,
                                             DetrTransformerEncoderLayer)
from mmdet.registry import MODELS
from torch import Tensor

from mmdet_ksdetr.models.ks_detr.ks_deformable_triple_attention import \
    KSMultiScaleDeformableTripleAttention
from mmdet_ksdetr.models.ks_detr.ks_triple_attention import (KSMultiheadTripleAttention,
                                                             ks_teacher_streams)

__all__ = [
    'DEFAULT_KS_CFG', 'build_ks_cfg', 'KSDetrTransformerEncoderLayer',
    'KSDeformableDetrTransformerEncoderLayer'
]

#: the released KS-DETR setting: triple attention, sMLP teacher input for Q^t, K^t and V^t
DEFAULT_KS_CFG = dict(mode='triple', teacher_input=dict(type='KSSMLP'))


def build_ks_cfg(ks_cfg: Optional[dict] = None) -> dict:
    """Fill the defaults of a ``ks_cfg`` and reject unknown keys / modes with a clear error."""
    cfg = copy.deepcopy(DEFAULT_KS_CFG)
    if ks_cfg:
        unknown = set(ks_cfg) - set(cfg)
        if unknown:
            raise ValueError(f'unknown ks_cfg keys {sorted(unknown)}; allowed: {sorted(cfg)} '
                             f'(e.g. ks_cfg=dict(mode="triple", '
                             f'teacher_input=dict(type="KSSMLP")))')
        cfg.update(copy.deepcopy(dict(ks_cfg)))
    ks_teacher_streams(cfg['mode'])  # validates the mode
    if not isinstance(cfg['teacher_input'], dict) or 'type' not in cfg['teacher_input']:
        raise ValueError('ks_cfg.teacher_input must be a dict with a "type" (KSSMLP or KSMarkFg)')
    return cfg


class _KSEncoderLayerMixin:
    """Adds the teacher input module and the multi-stream forward to an encoder layer."""

    ks_attention_type = None

    def __init__(self, *args, ks_cfg: Optional[dict] = None, **kwargs) -> None:
        self.ks_cfg = build_ks_cfg(ks_cfg)
        super().__init__(*args, **kwargs)

    def _init_layers(self) -> None:
        super()._init_layers()  # stock self_attn, FFN and norms
        attn_cfg = dict(self.self_attn_cfg, mode=self.ks_cfg['mode'])
        self.self_attn = self.ks_attention_type(**attn_cfg)
        self.teacher_streams = self.self_attn.teacher_streams
        ti_cfg = dict(self.ks_cfg['teacher_input'])
        if ti_cfg.setdefault('embed_dims', self.embed_dims) != self.embed_dims:
            raise ValueError(f'ks_cfg.teacher_input.embed_dims={ti_cfg["embed_dims"]} does not '
                             f'match the encoder embed_dims={self.embed_dims}: remove it or set '
                             f'it to {self.embed_dims}')
        self.teacher_input = MODELS.build(ti_cfg)

    def forward(self, query: Tensor, query_pos: Tensor, key_padding_mask: Tensor,
                ks_fg_mask: Optional[Tensor] = None,
                **kwargs) -> Union[Tensor, Tuple[Tensor, List[Tensor]]]:
        """Without ``ks_fg_mask``: the stock layer, returns (B, N, C). With it ((B, N) bool):
        returns ``(memory, [teacher memories])``, each (B, N, C)."""
        if ks_fg_mask is None:
            return super().forward(query, query_pos, key_padding_mask, **kwargs)
        x_t = self.teacher_input(query, ks_fg_mask)
        streams = self.self_attn(
            query=query, key=query, value=query, query_pos=query_pos, key_pos=query_pos,
            key_padding_mask=key_padding_mask, teacher_query=x_t, **kwargs)
        z = torch.cat(streams, 0)  # shared norms / FFN over all streams at once
        z = self.norms[1](self.ffn(self.norms[0](z)))
        z = list(z.split(query.shape[0], 0))
        return z[0], z[1:]


class KSDetrTransformerEncoderLayer(_KSEncoderLayerMixin, DetrTransformerEncoderLayer):
    """DETR / Conditional / DAB / DN-DETR encoder layer with KS triple attention
    (:class:`KSMultiheadTripleAttention`); see the module docstring.

    Shapes: ``query``/``query_pos`` (B, N, C), ``key_padding_mask`` (B, N) or None,
    ``ks_fg_mask`` (B, N) bool."""
    ks_attention_type = KSMultiheadTripleAttention


class KSDeformableDetrTransformerEncoderLayer(_KSEncoderLayerMixin,
                                              DeformableDetrTransformerEncoderLayer):
    """Deformable-DETR encoder layer with KS deformable triple attention
    (:class:`KSMultiScaleDeformableTripleAttention`, v0 form); see the module docstring.

    Shapes: as the stock layer (B, N, C) plus ``ks_fg_mask`` (B, N) bool."""
    ks_attention_type = KSMultiScaleDeformableTripleAttention
