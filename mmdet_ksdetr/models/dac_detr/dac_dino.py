"""DAC-DETR on DINO (the release's two-stage, box-refine, CDN model)."""
from typing import Dict, Optional

from mmdet.models.detectors import DINO
from mmdet.registry import MODELS
from torch import Tensor

from mmdet_ksdetr.models.dac_detr.dac_decoder import DACDinoTransformerDecoder
from mmdet_ksdetr.models.dac_detr.dac_detector_mixin import DACDetectorMixin


@MODELS.register_module()
class DACDINO(DACDetectorMixin, DINO):
    """DAC-DETR (divide-and-conquer DETR) on mmdet's DINO.

    In training every decoder layer also runs a C-stream that shares the layer's
    cross-attention, norms and FFN (and the prediction branches) but skips self-attention, so
    its queries cannot suppress each other; it is supervised one-to-many
    (:class:`OneToManyAssigner`) while the O-stream keeps DINO's one-to-one and CDN losses. The
    CDN queries run through both streams. Inference is DINO's, unchanged: the C-stream adds no
    parameter and never runs in ``predict``, so a DACDINO checkpoint loads into ``DINO``.

    Config: ``decoder.share_first_self_attn`` (default True) makes the C-stream start from the
    O-stream's layer-0 self-attention output, as the release does; ``bbox_head`` must be
    :class:`DACDINOHead`; ``with_c_stream=False`` trains without the C-stream (an ablation:
    DINO with the DAC head's loss settings). Shapes as DINO: hidden states
    (num_layers, bs, num_dn + nq, dim).
    """

    dac_decoder_class = DACDinoTransformerDecoder

    def forward_decoder(self,
                        query: Tensor,
                        memory: Tensor,
                        memory_mask: Tensor,
                        reference_points: Tensor,
                        spatial_shapes: Tensor,
                        level_start_index: Tensor,
                        valid_ratios: Tensor,
                        dn_mask: Optional[Tensor] = None,
                        **kwargs) -> Dict:
        """DINO's decoder; in training also the C-stream (``hidden_states_c``,
        ``references_c``)."""
        if not (self.training and self.with_c_stream):
            return super().forward_decoder(query, memory, memory_mask, reference_points,
                                           spatial_shapes, level_start_index, valid_ratios,
                                           dn_mask, **kwargs)
        hidden, references, hidden_c, references_c = self.decoder(
            query=query, value=memory, key_padding_mask=memory_mask, self_attn_mask=dn_mask,
            reference_points=reference_points, spatial_shapes=spatial_shapes,
            level_start_index=level_start_index, valid_ratios=valid_ratios,
            reg_branches=self.bbox_head.reg_branches, with_c_stream=True, **kwargs)
        # keep the CDN label embedding in the graph when a batch has no GT (DDP), as DINO
        hidden = hidden + self.dn_query_generator.label_embedding.weight[0, 0] * 0.0
        return dict(hidden_states=hidden, references=list(references),
                    hidden_states_c=hidden_c, references_c=list(references_c))
