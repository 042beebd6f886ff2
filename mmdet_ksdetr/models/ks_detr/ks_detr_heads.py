"""Heads of the KS-DETR detectors: the stock heads plus teacher prediction groups in loss.

In ``loss()`` a KS detector hands the head, besides the stock inputs, the last decoder layer
of each of the ``T`` teacher passes as named arguments (as DAC-DETR's heads take their
C-stream): ``ks_teacher_hidden_states`` and ``ks_teacher_references``, dicts keyed by teacher
name (e.g. ``ks_share_v``). :class:`KSHeadMixin` gives every teacher group its own Hungarian
matching and the head's standard losses with identical weights: the student layers under the
stock keys (``loss_cls``, ``d0.loss_cls``, ...), each teacher group under
``<teacher name>.<stock key>`` (e.g. ``ks_share_v.loss_cls``). ``predict()`` is the stock one.
"""
from typing import Dict, List, Optional, Tuple

from mmdet.models.dense_heads import (ConditionalDETRHead, DABDETRHead, DeformableDETRHead)
from mmdet.models.layers.transformer import inverse_sigmoid
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from torch import Tensor

__all__ = ['KSHeadMixin', 'KSConditionalDETRHead', 'KSDABDETRHead', 'KSDeformableDETRHead']

# the stock heads' loss() inputs besides predictions and samples -> their loss_by_feat names
_LOSS_BY_FEAT_NAMES = dict(enc_outputs_class='enc_cls_scores',
                           enc_outputs_coord='enc_bbox_preds', dn_meta='dn_meta')


class KSHeadMixin:
    """Teacher prediction groups as named ``loss`` arguments (see module docstring).

    ``loss(hidden_states, references, batch_data_samples, ks_teacher_hidden_states=None,
    ks_teacher_references=None, **stock_inputs)``:

    - ``ks_teacher_hidden_states`` (dict[str, Tensor]): teacher name -> (1, B, Q, C), the last
      decoder layer of that teacher's pass;
    - ``ks_teacher_references`` (dict[str, ...]): teacher name -> the reference that layer was
      predicted from, in the format the head's ``forward`` takes for one layer;
    - ``stock_inputs``: the base head's other inputs (``dn_meta``, encoder outputs), given to
      every group's ``loss_by_feat`` as to the student's.
    """

    def loss(self, hidden_states: Tensor, references, batch_data_samples: SampleList,
             ks_teacher_hidden_states: Optional[Dict[str, Tensor]] = None,
             ks_teacher_references: Optional[Dict[str, object]] = None,
             **kwargs) -> dict:
        losses = super().loss(hidden_states, references, batch_data_samples=batch_data_samples,
                              **kwargs)
        if not ks_teacher_hidden_states:
            return losses
        if set(ks_teacher_hidden_states) != set(ks_teacher_references or {}):
            raise ValueError(f'{type(self).__name__}: ks_teacher_hidden_states and '
                             f'ks_teacher_references must name the same teachers, got '
                             f'{sorted(ks_teacher_hidden_states)} and '
                             f'{sorted(ks_teacher_references or {})}')
        unknown = set(kwargs) - set(_LOSS_BY_FEAT_NAMES)
        if unknown:
            raise ValueError(f'{type(self).__name__}.loss got unexpected inputs '
                             f'{sorted(unknown)}')
        group_kwargs = {_LOSS_BY_FEAT_NAMES[k]: v for k, v in kwargs.items()}
        batch_gt_instances = [s.gt_instances for s in batch_data_samples]
        batch_img_metas = [s.metainfo for s in batch_data_samples]
        for name, hidden in ks_teacher_hidden_states.items():
            cls_scores, bbox_preds = self.forward_ks_teacher(hidden, ks_teacher_references[name])
            group = self.loss_by_feat(cls_scores, bbox_preds,
                                      batch_gt_instances=batch_gt_instances,
                                      batch_img_metas=batch_img_metas, **group_kwargs)
            losses.update({f'{name}.{k}': v for k, v in group.items()})
        return losses

    def forward_ks_teacher(self, hidden_states: Tensor, references) -> Tuple[Tensor, Tensor]:
        """Predictions (1, B, Q, ...) of a teacher's last decoder layer: the head's forward
        (its prediction branches are shared by all layers)."""
        return self(hidden_states, references)


@MODELS.register_module()
class KSConditionalDETRHead(KSHeadMixin, ConditionalDETRHead):
    """Conditional-DETR head taking KS teacher groups in loss. Shapes as
    :class:`ConditionalDETRHead`; teacher references are the shared (B, Q, 2) ones."""


@MODELS.register_module()
class KSDABDETRHead(KSHeadMixin, DABDETRHead):
    """DAB-DETR head taking KS teacher groups in loss. Shapes as :class:`DABDETRHead`; teacher
    hidden states (1, B, Q, C) and references (1, B, Q, 4)."""


@MODELS.register_module()
class KSDeformableDETRHead(KSHeadMixin, DeformableDETRHead):
    """Deformable-DETR head taking KS teacher groups in loss.

    A teacher group (a teacher's last decoder layer) is predicted by the branches of the last
    decoder layer, which matters with per-layer branches (``with_box_refine``). Teacher hidden
    states (1, B, Q, C); teacher references a one-entry list [(B, Q, 2 or 4)]."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.as_two_stage:
            raise ValueError('KS-DETR does not support two-stage Deformable DETR (the teacher '
                             'passes have no proposals): set as_two_stage=False')

    def forward_ks_teacher(self, hidden_states: Tensor,
                           references: List[Tensor]) -> Tuple[Tensor, Tensor]:
        last = self.num_pred_layer - 1
        reference = inverse_sigmoid(references[0])
        outputs_class = self.cls_branches[last](hidden_states[0])
        reg_preds = self.reg_branches[last](hidden_states[0])
        if reference.shape[-1] == 4:
            reg_preds += reference
        else:
            reg_preds[..., :2] += reference
        return outputs_class[None], reg_preds.sigmoid()[None]
