"""Heads of the KS-DETR detectors: the stock heads plus teacher prediction groups in loss.

In ``loss()`` a KS detector hands the head ``L + T`` prediction groups: the student's ``L``
decoder layers followed by the last decoder layer of each of the ``T`` teacher passes (the
KS release's 8 outputs for 6 layers and triple attention). :class:`KSHeadMixin` gives every
group its own Hungarian matching and the head's standard losses with identical weights: the
student layers under the stock keys (``loss_cls``, ``d0.loss_cls``, ...), each teacher group
under ``<teacher name>.<stock key>`` (e.g. ``ks_share_v.loss_cls``). ``predict()`` is the stock
one: only the student's last layer is used.
"""
from typing import Dict, List, Sequence, Tuple

import torch
from mmdet.models.dense_heads import (ConditionalDETRHead, DABDETRHead, DeformableDETRHead)
from mmdet.models.layers.transformer import inverse_sigmoid
from mmdet.registry import MODELS
from torch import Tensor

__all__ = ['KSHeadMixin', 'KSConditionalDETRHead', 'KSDABDETRHead', 'KSDeformableDETRHead']


class KSHeadMixin:
    """Splits the teacher prediction groups off in ``loss_by_feat`` (see module docstring).

    Args:
        ks_teacher_names (Sequence[str]): names of the teacher groups, in the order they are
            appended after the student layers. Set by the KS detector, not by hand.
    """

    def __init__(self, *args, ks_teacher_names: Sequence[str] = (), **kwargs) -> None:
        self.ks_teacher_names = tuple(ks_teacher_names)
        super().__init__(*args, **kwargs)

    def loss_by_feat(self, all_layers_cls_scores: Tensor, all_layers_bbox_preds: Tensor,
                     *args, **kwargs) -> Dict[str, Tensor]:
        """Stock losses of the student layers plus one loss group per teacher output.

        ``all_layers_*`` are (L + T, B, Q, ...); the remaining arguments are the stock
        ``loss_by_feat`` arguments of the head (GT instances, image metas, ``dn_meta``...)."""
        num_t = len(self.ks_teacher_names)
        num_s = all_layers_cls_scores.shape[0] - num_t
        if num_s < 1:
            raise ValueError(f'{type(self).__name__} expects the student layers followed by '
                             f'{num_t} teacher groups, got {all_layers_cls_scores.shape[0]} '
                             f'prediction groups')
        losses = super().loss_by_feat(all_layers_cls_scores[:num_s],
                                      all_layers_bbox_preds[:num_s], *args, **kwargs)
        for i, name in enumerate(self.ks_teacher_names):
            j = slice(num_s + i, num_s + i + 1)
            group = super().loss_by_feat(all_layers_cls_scores[j], all_layers_bbox_preds[j],
                                         *args, **kwargs)
            losses.update({f'{name}.{k}': v for k, v in group.items()})
        return losses


@MODELS.register_module()
class KSConditionalDETRHead(KSHeadMixin, ConditionalDETRHead):
    """Conditional-DETR head taking KS teacher groups in loss. Shapes as
    :class:`ConditionalDETRHead` with L + T layers (references (B, Q, 2) shared by all)."""


@MODELS.register_module()
class KSDABDETRHead(KSHeadMixin, DABDETRHead):
    """DAB-DETR head taking KS teacher groups in loss. Shapes as :class:`DABDETRHead` with
    L + T layers of hidden states and references ((L + T, B, Q, 4))."""


@MODELS.register_module()
class KSDeformableDETRHead(KSHeadMixin, DeformableDETRHead):
    """Deformable-DETR head taking KS teacher groups in loss.

    Prediction group ``i >= num_pred_layer`` (a teacher's last decoder layer) uses the
    branches of the last decoder layer, which matters with per-layer branches
    (``with_box_refine``). Shapes: ``hidden_states`` (L + T, B, Q, C), ``references`` a list of
    L + T tensors (B, Q, 2 or 4), the reference each group was predicted from."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.as_two_stage:
            raise ValueError('KS-DETR does not support two-stage Deformable DETR (the teacher '
                             'passes have no proposals): set as_two_stage=False')

    def forward(self, hidden_states: Tensor, references: List[Tensor]) -> Tuple[Tensor, Tensor]:
        last = self.num_pred_layer - 1
        all_cls, all_coords = [], []
        for layer_id in range(hidden_states.shape[0]):
            branch = min(layer_id, last)
            reference = inverse_sigmoid(references[layer_id])
            hidden_state = hidden_states[layer_id]
            outputs_class = self.cls_branches[branch](hidden_state)
            tmp_reg_preds = self.reg_branches[branch](hidden_state)
            if reference.shape[-1] == 4:
                tmp_reg_preds += reference
            else:
                tmp_reg_preds[..., :2] += reference
            all_cls.append(outputs_class)
            all_coords.append(tmp_reg_preds.sigmoid())
        return torch.stack(all_cls), torch.stack(all_coords)
