"""DN-Deformable-DETR: Deformable DETR with anchor-box queries and denoising training
(mmdet 3.3 has no DN-Deformable-DETR)."""
from typing import Dict, Optional, Tuple

from mmcv.ops import MultiScaleDeformableAttention
from mmdet.models.detectors import DeformableDETR
from mmdet.models.layers.transformer import DinoTransformerDecoder
from mmdet.registry import MODELS
from mmdet.structures import OptSampleList
from torch import Tensor, nn

from mmdet_ksdetr.models.dn_detr.denoising_detector_mixin import DenoisingDetectorMixin

__all__ = ['DNDeformableDETR']


@MODELS.register_module()
class DNDeformableDETR(DenoisingDetectorMixin, DeformableDETR):
    """DN-Deformable-DETR (Li et al., CVPR 2022): Deformable DETR with box refinement whose
    queries are learnt 4-D anchor boxes (positional query = MLP of their sine embedding,
    mmdet's ``DinoTransformerDecoder``) and whose decoder also reconstructs noised GT boxes and
    labels in training (``dn_cfg``, no contrastive negatives; :class:`DenoisingDetectorMixin`).
    Not two-stage. The content of the matching queries is the "no object" label embedding.
    Its head is mmdet's ``DINOHead`` (no encoder losses without two-stage).

    Shapes: anchors ``query_embedding`` (Q, 4); in training Q_dn + Q queries and ``dn_mask``;
    outputs as DINO's decoder (hidden states (L, B, Q, C), references L + 1 x (B, Q, 4)).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.as_two_stage or not self.with_box_refine:
            raise ValueError('DN-Deformable-DETR needs with_box_refine=True and '
                             'as_two_stage=False')

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

    def pre_decoder(self, memory: Tensor, memory_mask: Tensor, spatial_shapes: Tensor,
                    batch_data_samples: OptSampleList = None) -> Tuple[Dict, Dict]:
        """Anchor-box queries, with the denoising queries in front (training)."""
        anchors = self.query_embedding.weight[None].repeat(memory.size(0), 1, 1)
        query, anchors, dn_mask, dn_meta = self.add_denoising_queries(
            anchors, batch_data_samples)
        head_inputs_dict = dict(enc_outputs_class=None, enc_outputs_coord=None,
                                dn_meta=dn_meta) if self.training else {}
        decoder_inputs_dict = dict(query=query, memory=memory,
                                   reference_points=anchors.sigmoid(), dn_mask=dn_mask)
        return decoder_inputs_dict, head_inputs_dict

    def forward_decoder(self, query: Tensor, memory: Tensor, memory_mask: Tensor,
                        reference_points: Tensor, spatial_shapes: Tensor,
                        level_start_index: Tensor, valid_ratios: Tensor,
                        dn_mask: Optional[Tensor] = None) -> Dict:
        """mmdet's ``DinoTransformerDecoder`` (box refinement by the head's ``reg_branches``)
        with the denoising self-attention mask; references are the initial anchors and each
        layer's refined boxes."""
        hidden_states, references = self.decoder(
            query=query, value=memory, key_padding_mask=memory_mask, self_attn_mask=dn_mask,
            reference_points=reference_points, spatial_shapes=spatial_shapes,
            level_start_index=level_start_index, valid_ratios=valid_ratios,
            reg_branches=self.bbox_head.reg_branches)
        return dict(hidden_states=hidden_states, references=list(references))
