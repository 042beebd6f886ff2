"""DN-Deformable-DETR as detrex (and the KS-DETR release built on it) computes it.

Three things set detrex's DN-Deformable-DETR apart from this library's
:class:`~mmdet_ksdetr.models.dn_detr.DNDeformableDETR` (mmdet's DINO decoder): the matching
queries have learnt content embeddings (``tgt_embed``, C - 1 channels plus the indicator 0)
instead of the "no object" label embedding; from the second decoder layer on, the positional
query is scaled element-wise by an MLP of the layer's input (``query_scale``, as Conditional
DETR); and the decoder has no final LayerNorm. References are turned back into logits with
``inverse_sigmoid`` eps 1e-3 (decoder refinement and head, :class:`DetrexDINOHead`).
"""
from typing import Tuple

import torch
from mmdet.models.layers import MLP, DinoTransformerDecoder, inverse_sigmoid
from mmdet.models.layers.transformer.utils import coordinate_to_encoding
from mmdet.registry import MODELS
from torch import Tensor, nn

from mmdet_ksdetr.models.detrex.heads import DETREX_REFERENCE_EPS
from mmdet_ksdetr.models.dn_detr.dn_deformable_detr import DNDeformableDETR

__all__ = ['DetrexDNDeformableDETR', 'DetrexDNDeformableDetrTransformerDecoder']


class DetrexDNDeformableDetrTransformerDecoder(DinoTransformerDecoder):
    """DINO's decoder with detrex DN-Deformable-DETR's conditional query scaling and no final
    LayerNorm: layer ``l`` takes the positional query ``s_l * MLP(sine(reference))``, where
    ``s_0 = 1`` and ``s_l = query_scale(query)`` (bs, nq, C) for ``l > 0``.

    Shapes: query (bs, nq, C), value (bs, nk, C), reference_points (bs, nq, 4) cxcywh in
    [0, 1] -> hidden states (L, bs, nq, C) and references (L + 1, bs, nq, 4): the initial
    boxes and each layer's refined ones.
    """

    def _init_layers(self) -> None:
        super()._init_layers()
        self.query_scale = MLP(self.embed_dims, self.embed_dims, self.embed_dims, 2)
        del self.norm  # detrex stacks the raw layer outputs

    def forward(self, query: Tensor, value: Tensor, key_padding_mask: Tensor,
                self_attn_mask: Tensor, reference_points: Tensor, spatial_shapes: Tensor,
                level_start_index: Tensor, valid_ratios: Tensor, reg_branches: nn.ModuleList,
                **kwargs) -> Tuple[Tensor, Tensor]:
        """Run the layers, refining the boxes with ``reg_branches`` after each (see the class
        docstring; arguments as :class:`DinoTransformerDecoder`)."""
        ratios = torch.cat([valid_ratios, valid_ratios], -1)[:, None]
        hidden, refs = [], [reference_points]
        for i, layer in enumerate(self.layers):
            ref_input = reference_points[:, :, None] * ratios
            query_pos = self.ref_point_head(coordinate_to_encoding(ref_input[:, :, 0, :]))
            if i > 0:
                query_pos = self.query_scale(query) * query_pos
            query = layer(query, query_pos=query_pos, value=value,
                          key_padding_mask=key_padding_mask, self_attn_mask=self_attn_mask,
                          spatial_shapes=spatial_shapes, level_start_index=level_start_index,
                          valid_ratios=valid_ratios, reference_points=ref_input, **kwargs)
            new = (reg_branches[i](query) +
                   inverse_sigmoid(reference_points, eps=DETREX_REFERENCE_EPS)).sigmoid()
            reference_points = new.detach()
            hidden.append(query)
            refs.append(new)
        if self.return_intermediate:
            return torch.stack(hidden), torch.stack(refs)
        return query, reference_points


@MODELS.register_module()
class DetrexDNDeformableDETR(DNDeformableDETR):
    """DN-Deformable-DETR as detrex builds it: learnt anchors ``query_embedding`` (Q, 4) and
    learnt content queries ``content_embedding`` (Q, C - 1, plus the indicator channel 0), run
    through :class:`DetrexDNDeformableDetrTransformerDecoder`.

    Images (bs, 3, H, W) -> per decoder layer logits (L, bs, Q, num_classes) and boxes
    (L, bs, Q, 4) normalised cxcywh; denoising queries (``dn_cfg``) in training only.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        indicator = int(self.dn_query_generator.with_indicator)
        self.content_embedding = nn.Embedding(self.num_queries, self.embed_dims - indicator)

    def _init_layers(self) -> None:
        decoder_cfg = self.decoder
        super()._init_layers()
        self.decoder = DetrexDNDeformableDetrTransformerDecoder(**decoder_cfg)

    def init_weights(self) -> None:
        """As detrex: content queries 0, anchors ``logit(U(0, 1))`` clipped to [-3, 3]."""
        super().init_weights()
        nn.init.zeros_(self.content_embedding.weight)
        with torch.no_grad():
            anchors = self.query_embedding.weight
            anchors.copy_(inverse_sigmoid(torch.rand_like(anchors)).clamp(-3, 3))

    def matching_content_queries(self, batch_size: int) -> Tensor:
        """The learnt content queries (with the indicator channel 0), (bs, Q, C)."""
        content = self.content_embedding.weight
        if self.dn_query_generator.with_indicator:
            content = torch.cat([content, content.new_zeros(len(content), 1)], 1)
        return content[None].expand(batch_size, -1, -1)
