"""DAC-DETR on Deformable DETR (box refinement / two-stage)."""
from typing import Dict

from mmdet.models.detectors import DeformableDETR
from mmdet.registry import MODELS
from torch import Tensor

from mmdet_ksdetr.models.dac_detr.dac_decoder import DACDeformableDetrTransformerDecoder
from mmdet_ksdetr.models.dac_detr.dac_detector_mixin import DACDetectorMixin


@MODELS.register_module()
class DACDeformableDETR(DACDetectorMixin, DeformableDETR):
    """DAC-DETR (divide-and-conquer DETR) on mmdet's Deformable DETR.

    In training every decoder layer also runs a C-stream that shares the layer's
    cross-attention, norms, FFN, the fixed ``query_pos`` and the prediction branches, but skips
    self-attention; it is supervised one-to-many (:class:`OneToManyAssigner`), the O-stream
    keeps the one-to-one Hungarian loss. Works with and without ``with_box_refine`` /
    ``as_two_stage``. Inference is Deformable DETR's, unchanged, and no parameter is added.

    Config: ``decoder.share_first_self_attn`` (default True, the release's layer-0 sharing);
    ``bbox_head`` must be :class:`DACDeformableDETRHead`; ``with_c_stream=False`` trains
    without the C-stream (an ablation). Shapes as Deformable DETR: hidden
    states (num_layers, bs, nq, dim).
    """

    dac_decoder_class = DACDeformableDetrTransformerDecoder

    def forward_decoder(self, query: Tensor, query_pos: Tensor, memory: Tensor,
                        memory_mask: Tensor, reference_points: Tensor, spatial_shapes: Tensor,
                        level_start_index: Tensor, valid_ratios: Tensor) -> Dict:
        """Deformable DETR's decoder; in training also the C-stream (``hidden_states_c``,
        ``references_c``)."""
        if not (self.training and self.with_c_stream):
            return super().forward_decoder(query, query_pos, memory, memory_mask,
                                           reference_points, spatial_shapes, level_start_index,
                                           valid_ratios)
        hidden, inter_refs, hidden_c, inter_refs_c = self.decoder(
            query=query, query_pos=query_pos, value=memory, key_padding_mask=memory_mask,
            reference_points=reference_points, spatial_shapes=spatial_shapes,
            level_start_index=level_start_index, valid_ratios=valid_ratios,
            reg_branches=self.bbox_head.reg_branches if self.with_box_refine else None,
            with_c_stream=True)
        return dict(hidden_states=hidden, references=[reference_points, *inter_refs],
                    hidden_states_c=hidden_c, references_c=[reference_points, *inter_refs_c])
