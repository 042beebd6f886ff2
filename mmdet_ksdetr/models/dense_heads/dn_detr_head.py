"""DN-DETR head: DAB-DETR's head plus the denoising losses (mmdet's DINO DN-loss code)."""
from typing import Dict, List

from mmdet.models.dense_heads import DABDETRHead, DINOHead
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.utils import InstanceList, OptInstanceList
from torch import Tensor

__all__ = ['DNDETRHead']


@MODELS.register_module()
class DNDETRHead(DABDETRHead):
    """Head of DN-DETR (Li et al., CVPR 2022): DAB-DETR's head, trained on the matching
    queries with Hungarian matching and on the leading denoising queries against the GT they
    were noised from.

    The denoising targets and losses are mmdet's :class:`~mmdet.models.dense_heads.DINOHead`
    methods (``split_outputs``, ``loss_dn`` ...), which only need ``dn_meta`` in mmdet's layout
    (:class:`~mmdet_ksdetr.models.layers.dn_query_generator.DnQueryGenerator` produces it).
    Keys: the stock ``loss_*`` / ``d{i}.loss_*`` plus ``dn_loss_*`` / ``d{i}.dn_loss_*``.

    Shapes: ``hidden_states`` (L, B, Q_dn + Q, C), ``references`` (L, B, Q_dn + Q, 4).
    """
    split_outputs = staticmethod(DINOHead.split_outputs)
    loss_dn = DINOHead.loss_dn
    _loss_dn_single = DINOHead._loss_dn_single
    get_dn_targets = DINOHead.get_dn_targets
    _get_dn_targets_single = DINOHead._get_dn_targets_single

    def loss(self, hidden_states: Tensor, references: Tensor,
             batch_data_samples: SampleList, dn_meta: Dict[str, int]) -> dict:
        batch_gt_instances = [s.gt_instances for s in batch_data_samples]
        batch_img_metas = [s.metainfo for s in batch_data_samples]
        outs = self(hidden_states, references)
        return self.loss_by_feat(*outs, batch_gt_instances, batch_img_metas, dn_meta)

    def loss_by_feat(self,
                     all_layers_cls_scores: Tensor,
                     all_layers_bbox_preds: Tensor,
                     batch_gt_instances: InstanceList,
                     batch_img_metas: List[dict],
                     dn_meta: Dict[str, int],
                     batch_gt_instances_ignore: OptInstanceList = None) -> Dict[str, Tensor]:
        (match_cls, match_bbox, dn_cls, dn_bbox) = self.split_outputs(
            all_layers_cls_scores, all_layers_bbox_preds, dn_meta)
        loss_dict = super().loss_by_feat(match_cls, match_bbox, batch_gt_instances,
                                         batch_img_metas, batch_gt_instances_ignore)
        dn_losses_cls, dn_losses_bbox, dn_losses_iou = self.loss_dn(
            dn_cls, dn_bbox, batch_gt_instances=batch_gt_instances,
            batch_img_metas=batch_img_metas, dn_meta=dn_meta)
        loss_dict['dn_loss_cls'] = dn_losses_cls[-1]
        loss_dict['dn_loss_bbox'] = dn_losses_bbox[-1]
        loss_dict['dn_loss_iou'] = dn_losses_iou[-1]
        for i, (c, b, g) in enumerate(zip(dn_losses_cls[:-1], dn_losses_bbox[:-1],
                                          dn_losses_iou[:-1])):
            loss_dict[f'd{i}.dn_loss_cls'] = c
            loss_dict[f'd{i}.dn_loss_bbox'] = b
            loss_dict[f'd{i}.dn_loss_iou'] = g
        return loss_dict
