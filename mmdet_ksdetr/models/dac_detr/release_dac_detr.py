"""The architecture of the released DAC-DETR checkpoints (huzhengdongcs/DAC-DETR): a two-stage
Deformable DETR with box refinement, mixed query selection and look-forward-twice."""
from typing import Dict, Tuple

from mmdet.registry import MODELS
from torch import Tensor, nn

from mmdet_ksdetr.models.dac_detr.dac_deformable_detr import DACDeformableDETR


@MODELS.register_module()
class ReleaseDACDETR(DACDeformableDETR):
    """The released DAC-DETR model: :class:`DACDeformableDETR` (two-stage, box refinement) with
    *mixed query selection*: the positional queries come from the top-k encoder proposals, the
    content queries are a learned embedding.

    What differs from mmdet's DINO, which the other DAC configs use: the proposals are ranked by
    the first class row of the encoder branch (not the max over classes); the positional query
    is computed once from the proposals (sine embedding -> ``pos_trans_fc`` ->
    ``pos_trans_norm``, first half) and reused by every decoder layer (no per-layer
    ``ref_point_head``); the decoder has no final norm. Look-forward-twice only changes the
    gradient: every layer's boxes are ``sigmoid(reg_branch(h) + inverse_sigmoid(ref_in))`` as in
    mmdet's Deformable-DETR head. CDN queries are a training-only input of the release and are
    not built here (training runs the C-stream and Hungarian losses without them).

    Shapes: ``query_embedding.weight`` (num_queries, dim); decoder inputs ``query`` and
    ``query_pos`` (bs, num_queries, dim), ``reference_points`` (bs, num_queries, 4) in
    normalised cxcywh; ``forward(mode='tensor')`` returns the per-layer logits
    (num_layers, bs, num_queries, num_classes) and boxes (num_layers, bs, num_queries, 4).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not (self.as_two_stage and self.with_box_refine):
            raise ValueError('ReleaseDACDETR is the two-stage box-refinement model: set '
                             f'as_two_stage=True and with_box_refine=True (got '
                             f'{self.as_two_stage} and {self.with_box_refine})')

    def _init_layers(self) -> None:
        super()._init_layers()
        # the mixed-selection content queries (the release's ``query_embed``)
        self.query_embedding = nn.Embedding(self.num_queries, self.embed_dims)

    def pre_decoder(self, memory: Tensor, memory_mask: Tensor,
                    spatial_shapes: Tensor) -> Tuple[Dict, Dict]:
        """Deformable DETR's two-stage query selection, with the content queries replaced by the
        learned embedding (mixed selection); ``query_pos`` and ``reference_points`` are the
        proposals' as in the stock detector."""
        decoder_inputs_dict, head_inputs_dict = super().pre_decoder(memory, memory_mask,
                                                                    spatial_shapes)
        content = self.query_embedding.weight[None].expand(memory.size(0), -1, -1)
        decoder_inputs_dict['query'] = content
        return decoder_inputs_dict, head_inputs_dict
