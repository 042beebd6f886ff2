"""mmdet's Deformable DETR as detrex computes it (detrex's Deformable-DETR model zoo).

With box refinement, each decoder layer moves its reference by
``sigmoid(delta + inverse_sigmoid(reference))``; detrex clamps the reference at 1e-3 there,
mmdet's ``DeformableDetrTransformerDecoder`` at 1e-5. Everything else (encoder, two-stage
proposals, query split, heads' branches) is mmdet's and equals detrex's.
"""
from typing import Optional, Tuple

import torch
from mmdet.models.detectors import DeformableDETR
from mmdet.models.layers import DeformableDetrTransformerDecoder, inverse_sigmoid
from mmdet.registry import MODELS
from torch import Tensor, nn

from mmdet_ksdetr.models.detrex.heads import DETREX_REFERENCE_EPS

__all__ = ['DetrexDeformableDETR', 'DetrexDeformableDetrTransformerDecoder']


class DetrexDeformableDetrTransformerDecoder(DeformableDetrTransformerDecoder):
    """mmdet's Deformable-DETR decoder with detrex's reference clamp (eps 1e-3) in the box
    refinement.

    Shapes: query (bs, num_queries, dim), value (bs, num_keys, dim), reference_points
    (bs, num_queries, 2 or 4) -> hidden states (num_layers, bs, num_queries, dim) and
    references (num_layers, bs, num_queries, 2 or 4) (each layer's refined, detached box).
    """

    reference_eps = DETREX_REFERENCE_EPS

    def forward(self, query: Tensor, query_pos: Tensor, value: Tensor, key_padding_mask: Tensor,
                reference_points: Tensor, spatial_shapes: Tensor, level_start_index: Tensor,
                valid_ratios: Tensor, reg_branches: Optional[nn.Module] = None,
                **kwargs) -> Tuple[Tensor, Tensor]:
        """Run the layers; see :class:`DeformableDetrTransformerDecoder` for the arguments."""
        hidden, refs = [], []
        output = query
        for layer_id, layer in enumerate(self.layers):
            ratios = valid_ratios if reference_points.shape[-1] == 2 else \
                torch.cat([valid_ratios, valid_ratios], -1)
            output = layer(output, query_pos=query_pos, value=value,
                           key_padding_mask=key_padding_mask, spatial_shapes=spatial_shapes,
                           level_start_index=level_start_index, valid_ratios=valid_ratios,
                           reference_points=reference_points[:, :, None] * ratios[:, None],
                           **kwargs)
            if reg_branches is not None:
                delta = reg_branches[layer_id](output)
                logit = inverse_sigmoid(reference_points, eps=self.reference_eps)
                if reference_points.shape[-1] == 4:
                    delta = delta + logit
                else:
                    delta = torch.cat([delta[..., :2] + logit, delta[..., 2:]], -1)
                reference_points = delta.sigmoid().detach()
            if self.return_intermediate:
                hidden.append(output)
                refs.append(reference_points)
        if self.return_intermediate:
            return torch.stack(hidden), torch.stack(refs)
        return output, reference_points


@MODELS.register_module()
class DetrexDeformableDETR(DeformableDETR):
    """mmdet's ``DeformableDETR`` whose decoder refines boxes with detrex's clamp.

    Only the decoder class differs (:class:`DetrexDeformableDetrTransformerDecoder`); inputs,
    outputs and state-dict keys are mmdet's: images (bs, 3, H, W) -> per decoder layer logits
    (bs, num_queries, num_classes) and boxes (bs, num_queries, 4).
    """

    def _init_layers(self) -> None:
        decoder_cfg = self.decoder
        super()._init_layers()
        self.decoder = DetrexDeformableDetrTransformerDecoder(**decoder_cfg)
