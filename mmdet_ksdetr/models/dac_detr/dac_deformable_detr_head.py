"""Deformable-DETR head with DAC-DETR's C-stream losses."""
from typing import Dict, List, Optional

from mmdet.models.dense_heads import DeformableDETRHead
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.utils import InstanceList, OptInstanceList
from torch import Tensor

from mmdet_ksdetr.models.dac_detr.dac_head_mixin import DACHeadMixin


@MODELS.register_module()
class DACDeformableDETRHead(DACHeadMixin, DeformableDETRHead):
    """Deformable-DETR head for :class:`DACDeformableDETR` (DAC-DETR: a C-Decoder stream without
    self-attention, supervised one-to-many, next to the one-to-one O-Decoder).

    ``loss`` takes, besides Deformable DETR's inputs, the C-stream's ``hidden_states_c``
    (num_layers, bs, nq, dim) and ``references_c`` (num_layers + 1 tensors of (bs, nq, 2|4)).
    The O-stream gets Deformable DETR's losses (Hungarian + class-agnostic encoder proposals);
    the C-stream one-to-many losses ``loss_cls_c``, ``d{i}.loss_cls_c``, ... Prediction and
    parameters are DeformableDETRHead's. See :class:`DACHeadMixin` for the extra arguments.
    """

    _enc_class_agnostic_default = True  # Deformable DETR's encoder proposals

    def loss(self, hidden_states: Tensor, references: List[Tensor],
             enc_outputs_class: Tensor, enc_outputs_coord: Tensor,
             batch_data_samples: SampleList, hidden_states_c: Optional[Tensor] = None,
             references_c: Optional[List[Tensor]] = None) -> dict:
        batch_gt_instances = [s.gt_instances for s in batch_data_samples]
        batch_img_metas = [s.metainfo for s in batch_data_samples]
        outs = self(hidden_states, references)
        losses = self.loss_by_feat(*outs, enc_outputs_class, enc_outputs_coord,
                                   batch_gt_instances, batch_img_metas)
        if hidden_states_c is None:
            return losses
        cls_c, box_c = self(hidden_states_c, references_c)
        losses.update(self.loss_o2m_by_feat(
            cls_c, box_c, outs[1] if self.o2m_match_o_boxes else box_c, batch_gt_instances,
            batch_img_metas))
        return losses

    def loss_by_feat(self, all_layers_cls_scores: Tensor, all_layers_bbox_preds: Tensor,
                     enc_cls_scores: Tensor, enc_bbox_preds: Tensor,
                     batch_gt_instances: InstanceList, batch_img_metas: List[dict],
                     batch_gt_instances_ignore: OptInstanceList = None) -> Dict[str, Tensor]:
        """Deformable DETR's O-stream losses; the encoder term honours ``enc_loss_cls`` and
        ``enc_class_agnostic`` (identical to DeformableDETRHead's when both are unset)."""
        loss_dict = super().loss_by_feat(all_layers_cls_scores, all_layers_bbox_preds, None,
                                         None, batch_gt_instances, batch_img_metas,
                                         batch_gt_instances_ignore)
        if enc_cls_scores is not None:
            loss_dict.update(self.loss_enc_by_feat(enc_cls_scores, enc_bbox_preds,
                                                   batch_gt_instances, batch_img_metas))
        return loss_dict
