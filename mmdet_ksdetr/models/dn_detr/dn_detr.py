"""DN-DETR: DAB-DETR with denoising training (mmdet 3.3 has no DN-DETR)."""
from typing import Dict, Optional, Tuple

from mmdet.models.detectors import DABDETR
from mmdet.registry import MODELS
from mmdet.structures import OptSampleList
from torch import Tensor

from mmdet_ksdetr.models.dn_detr.denoising_detector_mixin import DenoisingDetectorMixin

__all__ = ['DNDETR']


@MODELS.register_module()
class DNDETR(DenoisingDetectorMixin, DABDETR):
    """DN-DETR (Li et al., CVPR 2022): DAB-DETR whose decoder also reconstructs noised GT boxes
    and labels in training (``dn_cfg``: label noise, box noise, groups; see
    :class:`~mmdet_ksdetr.models.dn_detr.dn_query_generator.DnQueryGenerator` and
    :class:`DenoisingDetectorMixin`). The matching queries are the learnt anchor boxes with the
    "no object" label embedding as content. Inference is DAB-DETR's with that content query.

    Shapes: anchors ``query_embedding`` (Q, 4); in training the decoder sees Q_dn + Q queries
    and the ``dn_mask`` (Q_dn + Q, Q_dn + Q); outputs as DAB-DETR.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.num_patterns:
            raise ValueError('DN-DETR does not support num_patterns > 0')

    def pre_decoder(self, memory: Tensor,
                    batch_data_samples: OptSampleList = None) -> Tuple[Dict, Dict]:
        """DAB-DETR's decoder inputs with the denoising queries in front (training)."""
        anchors = self.query_embedding.weight[None].repeat(memory.size(0), 1, 1)
        query, query_pos, dn_mask, dn_meta = self.add_denoising_queries(
            anchors, batch_data_samples)
        head_inputs_dict = dict(dn_meta=dn_meta) if self.training else {}
        decoder_inputs_dict = dict(query=query, query_pos=query_pos, memory=memory,
                                   dn_mask=dn_mask)
        return decoder_inputs_dict, head_inputs_dict

    def forward_decoder(self, query: Tensor, query_pos: Tensor, memory: Tensor,
                        memory_mask: Tensor, memory_pos: Tensor,
                        dn_mask: Optional[Tensor] = None) -> Dict:
        """DAB-DETR's decoder with the denoising self-attention mask."""
        hidden_states, references = self.decoder(
            query=query, key=memory, query_pos=query_pos, key_pos=memory_pos,
            key_padding_mask=memory_mask, self_attn_masks=dn_mask,
            reg_branches=self.bbox_head.fc_reg)
        return dict(hidden_states=hidden_states, references=references)
