"""DN-DETR: DAB-DETR with denoising training (mmdet 3.3 has no DN-DETR)."""
from typing import Dict, Optional, Tuple

import torch
from mmdet.models.detectors import DABDETR, DINO
from mmdet.registry import MODELS
from mmdet.structures import OptSampleList
from torch import Tensor

from ..layers.dn_query_generator import DnQueryGenerator

__all__ = ['DNDETR', 'build_dn_query_generator']


def build_dn_query_generator(detector, dn_cfg: Optional[dict]) -> DnQueryGenerator:
    """The detector's :class:`DnQueryGenerator`; ``num_classes``, ``embed_dims`` and
    ``num_matching_queries`` come from the detector."""
    dn_cfg = dict(dn_cfg or {})
    clash = {'num_classes', 'embed_dims', 'num_matching_queries'} & set(dn_cfg)
    if clash:
        raise ValueError(f'dn_cfg must not set {sorted(clash)}: they are taken from the detector')
    return DnQueryGenerator(num_classes=detector.bbox_head.num_classes,
                            embed_dims=detector.embed_dims,
                            num_matching_queries=detector.num_queries, **dn_cfg)


@MODELS.register_module()
class DNDETR(DABDETR):
    """DN-DETR (Li et al., CVPR 2022): DAB-DETR whose decoder also reconstructs noised GT boxes
    and labels in training (``dn_cfg``: label noise, box noise, groups; see
    :class:`~mmdet_ksdetr.models.layers.dn_query_generator.DnQueryGenerator`). The matching
    queries are the learnt anchor boxes with the "no object" label embedding as content.
    Inference is DAB-DETR's with that content query.

    Shapes: anchors ``query_embedding`` (Q, 4); in training the decoder sees Q_dn + Q queries
    and the ``dn_mask`` (Q_dn + Q, Q_dn + Q); outputs as DAB-DETR.
    """

    def __init__(self, *args, dn_cfg: Optional[dict] = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.num_patterns:
            raise ValueError('DN-DETR does not support num_patterns > 0')
        self.dn_query_generator = build_dn_query_generator(self, dn_cfg)

    # DINO's: pre_decoder receives the data samples (for the DN queries)
    forward_transformer = DINO.forward_transformer

    def pre_decoder(self, memory: Tensor,
                    batch_data_samples: OptSampleList = None) -> Tuple[Dict, Dict]:
        batch_size = memory.size(0)
        query_pos = self.query_embedding.weight[None].repeat(batch_size, 1, 1)
        query = self.dn_query_generator.matching_label_query(batch_size)
        head_inputs_dict, dn_mask = {}, None
        if self.training:
            dn_label, dn_bbox, dn_mask, dn_meta = self.dn_query_generator(batch_data_samples)
            query = torch.cat([dn_label, query], 1)
            query_pos = torch.cat([dn_bbox, query_pos], 1)
            head_inputs_dict = dict(dn_meta=dn_meta)
        decoder_inputs_dict = dict(query=query, query_pos=query_pos, memory=memory,
                                   dn_mask=dn_mask)
        return decoder_inputs_dict, head_inputs_dict

    def forward_decoder(self, query: Tensor, query_pos: Tensor, memory: Tensor,
                        memory_mask: Tensor, memory_pos: Tensor,
                        dn_mask: Optional[Tensor] = None) -> Dict:
        hidden_states, references = self.decoder(
            query=query, key=memory, query_pos=query_pos, key_pos=memory_pos,
            key_padding_mask=memory_mask, self_attn_masks=dn_mask,
            reg_branches=self.bbox_head.fc_reg)
        return dict(hidden_states=hidden_states, references=references)
