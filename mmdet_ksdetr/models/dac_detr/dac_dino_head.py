"""DINO head with DAC-DETR's C-stream losses."""
from typing import Dict, List, Optional

from mmdet.models.dense_heads import DINOHead
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.utils import InstanceList, OptInstanceList
from torch import Tensor

from mmdet_ksdetr.models.dac_detr.dac_head_mixin import DACHeadMixin
from mmdet_ksdetr.utils.loss_keys import per_layer_losses


@MODELS.register_module()
class DACDINOHead(DACHeadMixin, DINOHead):
    """DINO head for :class:`DACDINO` (DAC-DETR: a C-Decoder stream without self-attention,
    supervised one-to-many, next to the one-to-one O-Decoder).

    ``loss`` takes, besides DINO's inputs, the C-stream's ``hidden_states_c``
    (num_layers, bs, num_dn + nq, dim) and ``references_c`` (num_layers + 1 tensors of
    (bs, num_dn + nq, 4)). The O-stream gets DINO's losses (Hungarian, CDN, encoder); the
    C-stream gets one-to-many losses on its matching queries (``loss_cls_c``,
    ``d{i}.loss_cls_c``, ...) and the CDN losses on its denoising queries (``dn_loss_cls_c``,
    ...). Prediction and parameters are DINOHead's (C-stream boxes use the same branches).
    See :class:`DACHeadMixin` for the extra arguments.
    """

    def loss(self, hidden_states: Tensor, references: List[Tensor],
             enc_outputs_class: Tensor, enc_outputs_coord: Tensor,
             batch_data_samples: SampleList, dn_meta: Dict[str, int],
             hidden_states_c: Optional[Tensor] = None,
             references_c: Optional[List[Tensor]] = None) -> dict:
        batch_gt_instances = [s.gt_instances for s in batch_data_samples]
        batch_img_metas = [s.metainfo for s in batch_data_samples]
        outs = self(hidden_states, references)
        losses = self.loss_by_feat(*outs, enc_outputs_class, enc_outputs_coord,
                                   batch_gt_instances, batch_img_metas, dn_meta)
        if hidden_states_c is None:
            return losses
        cls_c, box_c = self(hidden_states_c, references_c)
        match_cls_c, match_box_c, dn_cls_c, dn_box_c = self.split_outputs(cls_c, box_c, dn_meta)
        match_box_o = self.split_outputs(*outs, dn_meta)[1]
        losses.update(self.loss_o2m_by_feat(
            match_cls_c, match_box_c, match_box_o if self.o2m_match_o_boxes else match_box_c,
            batch_gt_instances, batch_img_metas))
        if dn_cls_c is not None:
            dn_cls, dn_bbox, dn_iou = self.loss_dn(dn_cls_c, dn_box_c, batch_gt_instances,
                                                   batch_img_metas, dn_meta)
            losses.update(per_layer_losses(('dn_loss_cls', 'dn_loss_bbox', 'dn_loss_iou'),
                                           zip(dn_cls, dn_bbox, dn_iou), len(dn_cls), '_c'))
        return losses

    def loss_by_feat(self, all_layers_cls_scores: Tensor, all_layers_bbox_preds: Tensor,
                     enc_cls_scores: Tensor, enc_bbox_preds: Tensor,
                     batch_gt_instances: InstanceList, batch_img_metas: List[dict],
                     dn_meta: Dict[str, int],
                     batch_gt_instances_ignore: OptInstanceList = None) -> Dict[str, Tensor]:
        """DINO's O-stream losses; the encoder term honours ``enc_loss_cls`` and
        ``enc_class_agnostic`` (identical to DINOHead's when both are unset)."""
        loss_dict = super().loss_by_feat(all_layers_cls_scores, all_layers_bbox_preds, None,
                                         None, batch_gt_instances, batch_img_metas, dn_meta,
                                         batch_gt_instances_ignore)
        if enc_cls_scores is not None:
            loss_dict.update(self.loss_enc_by_feat(enc_cls_scores, enc_bbox_preds,
                                                   batch_gt_instances, batch_img_metas))
        return loss_dict
