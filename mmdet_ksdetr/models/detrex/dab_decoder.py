"""DAB-DETR's decoder as detrex computes it: the anchor update uses ``inverse_sigmoid`` with
``eps=1e-3`` (mmdet's decoder uses 1e-5; its head already uses 1e-3)."""
from typing import List

import torch
from mmdet.models.layers import DABDetrTransformerDecoder
from mmdet.models.layers.transformer.utils import coordinate_to_encoding, inverse_sigmoid
from torch import Tensor, nn

__all__ = ['DetrexDABDetrTransformerDecoder']

#: detrex's ``inverse_sigmoid`` clamp
DETREX_EPS = 1e-3


class DetrexDABDetrTransformerDecoder(DABDetrTransformerDecoder):
    """mmdet's DAB-DETR decoder with detrex's anchor update ``sigmoid(delta +
    inverse_sigmoid(ref, 1e-3))``. The two agree unless an anchor coordinate comes within 1e-3
    of 0 or 1, where mmdet's 1e-5 clamp gives another box.

    Shapes: ``query`` (bs, nq, C), ``key`` (bs, nk, C), ``query_pos`` the unsigmoided anchors
    (bs, nq, 4); returns hidden states (L, bs, nq, C) and the anchors each layer refines
    (L, bs, nq, 4).
    """

    def forward(self, query: Tensor, key: Tensor, query_pos: Tensor, key_pos: Tensor,
                reg_branches: nn.Module, key_padding_mask: Tensor = None,
                **kwargs) -> List[Tensor]:
        """Run the layers, refining the anchors after each one (see class docstring)."""
        dim, out = self.embed_dims, query
        anchors = query_pos.sigmoid()
        hidden, refs = [], [anchors]
        for i, layer in enumerate(self.layers):
            center = anchors[..., :self.query_dim]
            sine = coordinate_to_encoding(coord_tensor=center, num_feats=dim // 2)
            pos = self.ref_point_head(sine)
            if self.query_scale_type == 'fix_elewise':
                scale = self.query_scale.weight[i]
            else:
                scale = 1 if i == 0 else self.query_scale(out)
            sine = sine[..., :dim] * scale
            if self.with_modulated_hw_attn:
                wh = self.ref_anchor_head(out).sigmoid()
                # the sine embedding is (y, x): its first half is modulated by h, second by w
                sine = torch.cat([sine[..., :dim // 2] * (wh[..., 1] / center[..., 3])[..., None],
                                  sine[..., dim // 2:] * (wh[..., 0] / center[..., 2])[..., None]],
                                 dim=-1)
            out = layer(out, key, query_pos=pos, ref_sine_embed=sine, key_pos=key_pos,
                        key_padding_mask=key_padding_mask, is_first=(i == 0), **kwargs)
            delta = reg_branches(out)
            new = (delta[..., :self.query_dim] +
                   inverse_sigmoid(anchors, eps=DETREX_EPS)).sigmoid()
            if i != self.num_layers - 1:
                refs.append(new)
            anchors = new.detach()
            hidden.append(self.post_norm(out))
        if self.return_intermediate:
            return [torch.stack(hidden), torch.stack(refs)]
        return [hidden[-1][None], torch.stack(refs)]
