"""Losses of DAC-DETR's C-stream (one-to-many assignment, IA-BCE), the encoder-loss options and the
optional class-wise NMS at test time, shared by the DAC Deformable-DETR and DINO
heads."""
import contextlib
from typing import Dict, List, Optional, Tuple

import torch
from mmcv.ops import batched_nms
from mmdet.models.utils import multi_apply
from mmdet.registry import MODELS, TASK_UTILS
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy, bbox_overlaps, bbox_xyxy_to_cxcywh
from mmdet.utils import InstanceList, reduce_mean
from mmengine.structures import InstanceData
from torch import Tensor

from mmdet_ksdetr.models.dac_detr.ia_bce_loss import IABCELoss, rank_weights
from mmdet_ksdetr.utils.loss_keys import per_layer_losses


class DACHeadMixin:
    """Adds to a Deformable-DETR-family head (mixed in before it):

    - :meth:`loss_o2m_by_feat`: per decoder layer, the C-stream is assigned one-to-many by
      ``train_cfg['o2m_assigner']`` (default :class:`OneToManyAssigner`) and trained with the
      head's ``loss_cls`` (IA-BCE through :meth:`IABCELoss.loss_pairs`, or a sigmoid loss
      taking one-hot targets such as ``FocalLoss``), ``loss_bbox`` and ``loss_iou``, all divided
      by ``o2m_avg_factor_scale * #GT`` (averaged over GPUs). With ``o2m_rank_tau`` each
      positive's cls target and box terms are weighted by ``exp(-rank / tau)`` inside its GT's
      positives, ranked by the IA-BCE target ``t``.
    - encoder loss options: ``enc_loss_cls`` (another classification loss for the encoder
      proposals) and ``enc_class_agnostic``.
    - ``test_cfg['nms']`` (e.g. ``dict(type='nms', iou_threshold=0.8)``): class-wise NMS over
      the top ``test_cfg['nms_pre']`` (query, class) pairs before keeping ``max_per_img``; off
      when absent, so ``predict`` stays the stock one.

    Args:
        o2m_rank_tau (float, optional): rank-weight temperature (1.5 in the release's "ice"
            variant); None turns rank weights off. Defaults to None.
        o2m_avg_factor_scale (float): the C-stream normaliser is this times #GT (the release
            repeats the targets 3 times). Defaults to 3.0.
        o2m_match_o_boxes (bool): match with the O-stream's boxes and the C-stream's scores, the
            release's behaviour; False uses the C-stream's boxes. Defaults to True.
        enc_loss_cls (dict, optional): classification loss of the encoder proposals; None uses
            ``loss_cls``. Defaults to None.
        enc_class_agnostic (bool, optional): train the encoder proposals class-agnostically (all
            labels 0). None keeps the base head's choice. Defaults to None.
    """

    _enc_class_agnostic_default = False

    def __init__(self, *args, o2m_rank_tau: Optional[float] = None,
                 o2m_avg_factor_scale: float = 3.0, o2m_match_o_boxes: bool = True,
                 enc_loss_cls: Optional[dict] = None,
                 enc_class_agnostic: Optional[bool] = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)  # the base head (DeformableDETRHead / DINOHead)
        if o2m_rank_tau is not None and o2m_rank_tau <= 0:
            raise ValueError(f'o2m_rank_tau must be > 0 or None, got {o2m_rank_tau}')
        if o2m_avg_factor_scale <= 0:
            raise ValueError(f'o2m_avg_factor_scale must be > 0, got {o2m_avg_factor_scale}')
        if not getattr(self.loss_cls, 'use_sigmoid', False):
            raise ValueError(f'{type(self).__name__} needs a sigmoid classification loss '
                             '(FocalLoss or IABCELoss), got a softmax one')
        self.o2m_rank_tau = o2m_rank_tau
        self.o2m_avg_factor_scale = float(o2m_avg_factor_scale)
        self.o2m_match_o_boxes = bool(o2m_match_o_boxes)
        self.enc_loss_cls = MODELS.build(enc_loss_cls) if enc_loss_cls is not None else None
        self.enc_class_agnostic = (self._enc_class_agnostic_default
                                   if enc_class_agnostic is None else bool(enc_class_agnostic))
        o2m_cfg = (self.train_cfg or {}).get('o2m_assigner', dict(type='OneToManyAssigner'))
        self.o2m_assigner = TASK_UTILS.build(o2m_cfg)

    # ------------------------------------------------------------------ C-stream one-to-many
    def loss_o2m_by_feat(self, all_layers_cls_scores: Tensor, all_layers_bbox_preds: Tensor,
                         all_layers_match_bbox_preds: Tensor, batch_gt_instances: InstanceList,
                         batch_img_metas: List[dict], suffix: str = '_c') -> Dict[str, Tensor]:
        """One-to-many losses of the C-stream's matching queries at every decoder layer.

        Args:
            all_layers_cls_scores (Tensor): (L, bs, nq, C) C-stream logits.
            all_layers_bbox_preds (Tensor): (L, bs, nq, 4) C-stream boxes, normalised cxcywh.
            all_layers_match_bbox_preds (Tensor): (L, bs, nq, 4) boxes used for matching (the
                O-stream's by default).

        Returns:
            dict: ``loss_cls{suffix}`` etc. for the last layer, ``d{i}.loss_cls{suffix}`` etc.
            for the others.
        """
        num_gts = sum(len(gt) for gt in batch_gt_instances)
        # a float32 device scalar, not .item(): no host sync
        avg_factor = all_layers_cls_scores.new_tensor(self.o2m_avg_factor_scale * num_gts,
                                                      dtype=torch.float32)
        avg_factor = torch.clamp(reduce_mean(avg_factor), min=1)
        losses_cls, losses_bbox, losses_iou = multi_apply(
            self._loss_o2m_single, all_layers_cls_scores, all_layers_bbox_preds,
            all_layers_match_bbox_preds, batch_gt_instances=batch_gt_instances,
            batch_img_metas=batch_img_metas, avg_factor=avg_factor)
        return per_layer_losses(('loss_cls', 'loss_bbox', 'loss_iou'),
                                zip(losses_cls, losses_bbox, losses_iou), len(losses_cls), suffix)

    def get_o2m_targets(self, cls_scores: Tensor, match_bbox_preds: Tensor,
                        batch_gt_instances: InstanceList,
                        batch_img_metas: List[dict]) -> Tuple[Tensor, ...]:
        """Positive pairs of one layer over the batch.

        Returns:
            tuple: rows (P,) into the flattened (bs * nq) queries, labels (P,), normalised
            cxcywh box targets (P, 4), image-size factors (P, 4) and global GT ids (P,).
        """
        num_queries = cls_scores.shape[1]
        rows, labels, targets, factors, groups = [], [], [], [], []
        gt_offset = 0
        for img_id, (gt, meta) in enumerate(zip(batch_gt_instances, batch_img_metas)):
            img_h, img_w = meta['img_shape']
            factor = match_bbox_preds.new_tensor([img_w, img_h, img_w, img_h])[None]
            pred = InstanceData(
                scores=cls_scores[img_id].detach(),
                bboxes=bbox_cxcywh_to_xyxy(match_bbox_preds[img_id].detach()) * factor)
            result = self.o2m_assigner.assign(pred, gt, img_meta=meta)
            gt_inds = result.gt_inds
            rows.append(result.query_inds + img_id * num_queries)
            labels.append(gt.labels[gt_inds].long())
            targets.append(bbox_xyxy_to_cxcywh(gt.bboxes[gt_inds].to(factor.dtype) / factor))
            factors.append(factor.expand(len(gt_inds), 4))
            groups.append(gt_inds + gt_offset)
            gt_offset += len(gt)
        return (torch.cat(rows), torch.cat(labels), torch.cat(targets), torch.cat(factors),
                torch.cat(groups))

    def _loss_o2m_single(self, cls_scores: Tensor, bbox_preds: Tensor,
                         match_bbox_preds: Tensor, batch_gt_instances: InstanceList,
                         batch_img_metas: List[dict], avg_factor: Tensor) -> Tuple[Tensor]:
        rows, labels, targets, factors, groups = self.get_o2m_targets(
            cls_scores, match_bbox_preds, batch_gt_instances, batch_img_metas)
        flat_cls = cls_scores.reshape(-1, cls_scores.shape[-1])
        flat_box = bbox_preds.reshape(-1, 4)
        pos_box = flat_box[rows]
        with torch.no_grad():
            ious = bbox_overlaps(bbox_cxcywh_to_xyxy(pos_box.detach()),
                                 bbox_cxcywh_to_xyxy(targets), is_aligned=True)
            if isinstance(self.loss_cls, IABCELoss):
                t = self.loss_cls.soft_targets(flat_cls[rows, labels], ious)
            else:  # rank by the same quality p^0.25 * IoU^0.75
                t = flat_cls[rows, labels].detach().sigmoid().pow(0.25) * ious.pow(0.75)
            weights = rank_weights(t, groups, self.o2m_rank_tau) \
                if self.o2m_rank_tau is not None else torch.ones_like(t)

        if isinstance(self.loss_cls, IABCELoss):
            loss_cls = self.loss_cls.loss_pairs(
                flat_cls, rows, labels, ious,
                rank_weights=weights if self.o2m_rank_tau is not None else None,
                avg_factor=avg_factor)
        else:  # sigmoid losses that take one-hot targets (mmdet FocalLoss)
            onehot = torch.zeros_like(flat_cls)
            onehot[rows, labels] = 1.0
            loss_cls = self.loss_cls(flat_cls, onehot, avg_factor=avg_factor)

        loss_bbox = self.loss_bbox(pos_box, targets, weights[:, None].expand(-1, 4),
                                   avg_factor=avg_factor)
        loss_iou = self.loss_iou(bbox_cxcywh_to_xyxy(pos_box) * factors,
                                 bbox_cxcywh_to_xyxy(targets) * factors, weights,
                                 avg_factor=avg_factor)
        return loss_cls, loss_bbox, loss_iou

    # ------------------------------------------------------------------ encoder loss options
    @contextlib.contextmanager
    def _loss_cls_swapped(self, loss):
        original = self.loss_cls
        self.loss_cls = loss
        try:
            yield
        finally:
            self.loss_cls = original

    def loss_enc_by_feat(self, enc_cls_scores: Tensor, enc_bbox_preds: Tensor,
                         batch_gt_instances: InstanceList,
                         batch_img_metas: List[dict]) -> Dict[str, Tensor]:
        """Hungarian loss of the encoder proposals with ``enc_loss_cls`` /
        ``enc_class_agnostic``."""
        gts = batch_gt_instances
        if self.enc_class_agnostic:
            gts = []
            for gt in batch_gt_instances:
                gt = gt.clone()
                gt.labels = torch.zeros_like(gt.labels)
                gts.append(gt)
        loss_cls = self.enc_loss_cls if self.enc_loss_cls is not None else self.loss_cls
        with self._loss_cls_swapped(loss_cls):
            enc_loss_cls, enc_loss_bbox, enc_loss_iou = self.loss_by_feat_single(
                enc_cls_scores, enc_bbox_preds, batch_gt_instances=gts,
                batch_img_metas=batch_img_metas)
        return dict(enc_loss_cls=enc_loss_cls, enc_loss_bbox=enc_loss_bbox,
                    enc_loss_iou=enc_loss_iou)

    # ------------------------------------------------------------------ optional NMS
    def _predict_by_feat_single(self, cls_score: Tensor, bbox_pred: Tensor, img_meta: dict,
                                rescale: bool = True) -> InstanceData:
        nms_cfg = self.test_cfg.get('nms') if self.test_cfg else None
        if nms_cfg is None:
            return super()._predict_by_feat_single(cls_score, bbox_pred, img_meta, rescale)
        num_classes = cls_score.shape[-1]
        max_per_img = self.test_cfg.get('max_per_img', len(cls_score))
        nms_pre = min(self.test_cfg.get('nms_pre', 10000), cls_score.numel())
        scores, indexes = cls_score.sigmoid().view(-1).topk(nms_pre)
        labels = indexes % num_classes
        boxes = bbox_cxcywh_to_xyxy(bbox_pred[indexes // num_classes])
        img_h, img_w = img_meta['img_shape']
        boxes[:, 0::2] = (boxes[:, 0::2] * img_w).clamp(min=0, max=img_w)
        boxes[:, 1::2] = (boxes[:, 1::2] * img_h).clamp(min=0, max=img_h)
        _, keep = batched_nms(boxes, scores, labels, nms_cfg)
        keep = keep[:max_per_img]
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        if rescale:
            if img_meta.get('scale_factor') is None:
                raise ValueError('rescale=True needs scale_factor in the image meta')
            boxes = boxes / boxes.new_tensor(img_meta['scale_factor']).repeat((1, 2))
        results = InstanceData()
        results.bboxes = boxes
        results.scores = scores
        results.labels = labels
        return results
