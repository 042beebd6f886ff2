"""DN-Deformable-DETR: Deformable DETR with anchor-box queries and denoising training
(mmdet 3.3 has no DN-Deformable-DETR)."""
from typing import Dict, Optional, Tuple

import torch
from mmcv.ops import MultiScaleDeformableAttention
from mmdet.models.detectors import DINO, DeformableDETR
from mmdet.models.layers.transformer import DinoTransformerDecoder
from mmdet.registry import MODELS
from mmdet.structures import OptSampleList
from torch import Tensor, nn

from .dn_detr import build_dn_query_generator

__all__ = ['DNDeformableDETR']


@MODELS.register_module()
class DNDeformableDETR(DeformableDETR):
    """DN-Deformable-DETR (Li et al., CVPR 2022): Deformable DETR with box refinement whose
    queries are learnt 4-D anchor boxes (positional query = MLP of their sine embedding,
    mmdet's ``DinoTransformerDecoder``) and whose decoder also reconstructs noised GT boxes and
    labels in training (``dn_cfg``, no contrastive negatives). Not two-stage. The content of the
    matching queries is the "no object" label embedding.

    Shapes: anchors ``query_embedding`` (Q, 4); in training Q_dn + Q queries and ``dn_mask``;
    outputs as DINO's decoder (hidden states (L, B, Q, C), references L + 1 x (B, Q, 4)).
    """

    def __init__(self, *args, dn_cfg: Optional[dict] = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.as_two_stage or not self.with_box_refine:
            raise ValueError('DN-Deformable-DETR needs with_box_refine=True and '
                             'as_two_stage=False')
        self.dn_query_generator = build_dn_query_generator(self, dn_cfg)

    def _init_layers(self) -> None:
        decoder_cfg = self.decoder
        super()._init_layers()
        self.decoder = DinoTransformerDecoder(**decoder_cfg)
        self.query_embedding = nn.Embedding(self.num_queries, 4)  # anchors, unsigmoided
        del self.reference_points_fc

    def init_weights(self) -> None:
        super(DeformableDETR, self).init_weights()
        for coder in self.encoder, self.decoder:
            for p in coder.parameters():
                if p.dim() > 1:
                    nn.init.xavier_uniform_(p)
        for m in self.modules():
            if isinstance(m, MultiScaleDeformableAttention):
                m.init_weights()
        nn.init.normal_(self.level_embed)

    # DINO's: pre_decoder receives the data samples; decoder with DN attention mask
    forward_transformer = DINO.forward_transformer
    forward_decoder = DINO.forward_decoder

    def pre_decoder(self, memory: Tensor, memory_mask: Tensor, spatial_shapes: Tensor,
                    batch_data_samples: OptSampleList = None) -> Tuple[Dict, Dict]:
        batch_size = memory.size(0)
        anchors = self.query_embedding.weight[None].repeat(batch_size, 1, 1)
        query = self.dn_query_generator.matching_label_query(batch_size)
        head_inputs_dict, dn_mask = {}, None
        if self.training:
            dn_label, dn_bbox, dn_mask, dn_meta = self.dn_query_generator(batch_data_samples)
            query = torch.cat([dn_label, query], 1)
            anchors = torch.cat([dn_bbox, anchors], 1)
            head_inputs_dict = dict(enc_outputs_class=None, enc_outputs_coord=None,
                                    dn_meta=dn_meta)
        decoder_inputs_dict = dict(query=query, memory=memory,
                                   reference_points=anchors.sigmoid(), dn_mask=dn_mask)
        return decoder_inputs_dict, head_inputs_dict
