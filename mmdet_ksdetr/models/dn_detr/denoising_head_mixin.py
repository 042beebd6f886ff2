"""Denoising (DN-DETR) losses for a DETR head whose decoder also reconstructs noised GT.

In training, the detector (:class:`~mmdet_ksdetr.models.dn_detr.denoising_detector_mixin.
DenoisingDetectorMixin`) puts ``num_denoising_queries`` denoising queries in front of the
matching queries: ``num_denoising_groups`` groups of ``max_gt`` slots, slot
``g * max_gt + i`` holding a noised copy of GT ``i`` of its image (the remaining slots are
padding). :class:`DenoisingHeadMixin` gives the matching queries the head's stock Hungarian
losses and the denoising queries the stock per-layer loss (``loss_by_feat_single``: same loss
modules, weights and normalisation) against their own GT, assigned by slot instead of by
Hungarian matching; padding slots are background.
"""
from typing import Dict, List, Tuple

import torch
from mmdet.structures import SampleList
from mmdet.structures.bbox import bbox_xyxy_to_cxcywh
from mmdet.utils import InstanceList, OptInstanceList
from mmengine.structures import InstanceData
from torch import Tensor
from mmdet_ksdetr.utils.loss_keys import per_layer_losses

__all__ = ['DenoisingHeadMixin']


class DenoisingHeadMixin:
    """Mixed in before a single-scale DETR head (e.g. ``DABDETRHead``).

    ``loss`` takes ``dn_meta`` (``num_denoising_queries``, ``num_denoising_groups``) besides the
    stock inputs; keys are the stock ``loss_*`` / ``d{i}.loss_*`` plus ``dn_loss_*`` /
    ``d{i}.dn_loss_*``. Prediction is the stock head's.
    """

    def loss(self, hidden_states: Tensor, references: Tensor,
             batch_data_samples: SampleList, dn_meta: Dict[str, int]) -> dict:
        """Stock + denoising losses; hidden states (L, B, Q_dn + Q, C)."""
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
        """``all_layers_*`` (L, B, Q_dn + Q, ...): the stock losses of the last Q queries,
        the denoising losses of the first Q_dn."""
        num_dn = dn_meta['num_denoising_queries']
        loss_dict = super().loss_by_feat(all_layers_cls_scores[:, :, num_dn:],
                                         all_layers_bbox_preds[:, :, num_dn:],
                                         batch_gt_instances, batch_img_metas,
                                         batch_gt_instances_ignore)
        dn_gts = self.denoising_gt_instances(batch_gt_instances, dn_meta)
        num_layers = all_layers_cls_scores.size(0)
        dn_losses = (self.loss_dn_single(all_layers_cls_scores[i, :, :num_dn],
                                         all_layers_bbox_preds[i, :, :num_dn], dn_gts,
                                         batch_img_metas) for i in range(num_layers))
        loss_dict.update(per_layer_losses(('dn_loss_cls', 'dn_loss_bbox', 'dn_loss_iou'),
                                          dn_losses, num_layers))
        return loss_dict

    def loss_dn_single(self, dn_cls_scores: Tensor, dn_bbox_preds: Tensor,
                       dn_gt_instances: InstanceList,
                       batch_img_metas: List[dict]) -> Tuple[Tensor, Tensor, Tensor]:
        """Denoising losses of one layer, (B, Q_dn, ...) predictions; zeros when the batch
        has no GT (no denoising queries)."""
        if dn_cls_scores.size(1) == 0:
            zero = dn_cls_scores.new_zeros(1)
            return zero, zero.clone(), zero.clone()
        return self.loss_by_feat_single(dn_cls_scores, dn_bbox_preds, dn_gt_instances,
                                        batch_img_metas)

    @staticmethod
    def denoising_gt_instances(batch_gt_instances: InstanceList,
                               dn_meta: Dict[str, int]) -> InstanceList:
        """Each image's GT repeated once per denoising group, with ``query_inds``: the
        denoising slot each copy is assigned to."""
        num_groups = dn_meta['num_denoising_groups']
        max_gt = dn_meta['num_denoising_queries'] // max(num_groups, 1)
        out = []
        for gt in batch_gt_instances:
            n = len(gt)
            slots = torch.arange(n, device=gt.labels.device)
            groups = torch.arange(num_groups, device=gt.labels.device)
            out.append(InstanceData(
                bboxes=gt.bboxes.repeat(num_groups, 1), labels=gt.labels.repeat(num_groups),
                query_inds=(groups[:, None] * max_gt + slots[None]).flatten()))
        return out

    def _get_targets_single(self, cls_score: Tensor, bbox_pred: Tensor,
                            gt_instances: InstanceData, img_meta: dict) -> tuple:
        """Stock Hungarian targets; for GT carrying ``query_inds`` (denoising) the targets of
        those fixed query slots, every other query background."""
        if 'query_inds' not in gt_instances:
            return super()._get_targets_single(cls_score, bbox_pred, gt_instances, img_meta)
        num_queries = bbox_pred.size(0)
        pos_inds = gt_instances.query_inds
        is_neg = torch.ones(num_queries, dtype=torch.bool, device=pos_inds.device)
        is_neg[pos_inds] = False
        gt_bboxes = gt_instances.bboxes
        labels = gt_bboxes.new_full((num_queries, ), self.num_classes, dtype=torch.long)
        labels[pos_inds] = gt_instances.labels
        img_h, img_w = img_meta['img_shape']
        factor = gt_bboxes.new_tensor([img_w, img_h, img_w, img_h]).unsqueeze(0)
        bbox_targets = torch.zeros_like(bbox_pred, dtype=gt_bboxes.dtype)
        bbox_weights = torch.zeros_like(bbox_pred, dtype=gt_bboxes.dtype)
        bbox_weights[pos_inds] = 1.0
        bbox_targets[pos_inds] = bbox_xyxy_to_cxcywh(gt_bboxes / factor)
        return (labels, gt_bboxes.new_ones(num_queries), bbox_targets, bbox_weights, pos_inds,
                is_neg.nonzero().squeeze(-1))
