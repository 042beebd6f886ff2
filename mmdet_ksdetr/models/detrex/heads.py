"""mmdet's Deformable-DETR / DINO heads as detrex computes them.

detrex turns every reference box back into logits with ``inverse_sigmoid(x, eps=1e-3)``;
mmdet's ``DeformableDETRHead.forward`` uses ``eps=1e-5``. The two differ wherever a reference
coordinate lies within 1e-3 of 0 or 1 (tiny or border boxes, and the ``inf`` proposals of the
two-stage encoder), so the released detrex weights need the release's clamp to give the
release's boxes. Nothing else changes: losses, ``predict`` and the branches are mmdet's.
"""
from typing import List, Tuple

import torch
from mmdet.models.dense_heads import ConditionalDETRHead, DeformableDETRHead, DINOHead
from mmdet.models.layers import inverse_sigmoid
from mmdet.registry import MODELS
from torch import Tensor

__all__ = ['DETREX_REFERENCE_EPS', 'DetrexDeformableDETRHead', 'DetrexDINOHead',
           'DetrexConditionalDETRHead']

DETREX_REFERENCE_EPS = 1e-3  # detrex.utils.inverse_sigmoid's default


class _DetrexReferenceClampMixin:
    """``forward`` of a Deformable-DETR-style head with detrex's reference clamp."""

    reference_eps = DETREX_REFERENCE_EPS

    def forward(self, hidden_states: Tensor, references: List[Tensor]) -> Tuple[Tensor, Tensor]:
        """Per decoder layer: class logits and sigmoid boxes refined from that layer's input
        reference.

        Args:
            hidden_states (Tensor): (num_layers, bs, num_queries, dim).
            references (list[Tensor]): num_layers + 1 references, each (bs, num_queries, 2)
                (cx, cy) or (bs, num_queries, 4) (cx, cy, w, h), in [0, 1]; the last unused.

        Returns:
            tuple[Tensor]: logits (num_layers, bs, num_queries, cls_out_channels) and boxes
            (num_layers, bs, num_queries, 4), normalised cxcywh.
        """
        all_cls, all_coords = [], []
        for layer_id, hidden in enumerate(hidden_states):
            reference = inverse_sigmoid(references[layer_id], eps=self.reference_eps)
            delta = self.reg_branches[layer_id](hidden)
            if reference.shape[-1] == 4:
                delta = delta + reference
            else:
                delta = torch.cat([delta[..., :2] + reference, delta[..., 2:]], -1)
            all_cls.append(self.cls_branches[layer_id](hidden))
            all_coords.append(delta.sigmoid())
        return torch.stack(all_cls), torch.stack(all_coords)


@MODELS.register_module()
class DetrexDeformableDETRHead(_DetrexReferenceClampMixin, DeformableDETRHead):
    """mmdet's ``DeformableDETRHead`` with detrex's ``inverse_sigmoid`` clamp (eps 1e-3).

    Shapes as :class:`DeformableDETRHead`: hidden states (num_layers, bs, num_queries, dim)
    -> logits (num_layers, bs, num_queries, num_classes), boxes (num_layers, bs,
    num_queries, 4) normalised cxcywh.
    """


@MODELS.register_module()
class DetrexDINOHead(_DetrexReferenceClampMixin, DINOHead):
    """mmdet's ``DINOHead`` with detrex's ``inverse_sigmoid`` clamp (eps 1e-3).

    Shapes as :class:`DINOHead`: hidden states (num_layers, bs, num_queries, dim) -> logits
    (num_layers, bs, num_queries, num_classes), boxes (num_layers, bs, num_queries, 4)
    normalised cxcywh; denoising and losses unchanged.
    """


@MODELS.register_module()
class DetrexConditionalDETRHead(ConditionalDETRHead):
    """mmdet's ``ConditionalDETRHead`` with detrex's ``inverse_sigmoid`` clamp (eps 1e-3) on the
    reference points.

    Shapes as :class:`ConditionalDETRHead`: hidden states (num_layers, bs, num_queries, dim) and
    references (bs, num_queries, 2) -> logits (num_layers, bs, num_queries, num_classes), boxes
    (num_layers, bs, num_queries, 4) normalised cxcywh.
    """

    reference_eps = DETREX_REFERENCE_EPS

    def forward(self, hidden_states: Tensor, references: Tensor) -> Tuple[Tensor, Tensor]:
        """Per decoder layer: class logits and sigmoid boxes around the (shared) references."""
        logits_ref = inverse_sigmoid(references, eps=self.reference_eps)
        boxes = []
        for hidden in hidden_states:
            delta = self.fc_reg(self.activate(self.reg_ffn(hidden)))
            delta = torch.cat([delta[..., :2] + logits_ref, delta[..., 2:]], -1)
            boxes.append(delta.sigmoid())
        return self.fc_cls(hidden_states), torch.stack(boxes)
