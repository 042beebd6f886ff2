"""One-to-many assignment of DAC-DETR's C-Decoder, vectorised."""
from dataclasses import dataclass
from typing import Optional

import torch
from mmdet.registry import TASK_UTILS
from mmdet.structures.bbox import bbox_overlaps
from mmengine.structures import InstanceData
from torch import Tensor

from mmdet_ksdetr.utils.divergence import check_finite_cost


@dataclass
class OneToManyAssignResult:
    """Positive (query, GT) pairs of one image.

    A query may appear in two pairs (positive for two GTs) and a GT may have none; everything
    not listed is background.

    Attributes:
        query_inds (Tensor): (P,) long, query index of each positive pair.
        gt_inds (Tensor): (P,) long, 0-based GT index of each pair.
        match_scores (Tensor): (P,) the matching score M[g, q] of each pair.
        num_queries (int): Q.
        num_gts (int): G.
    """
    query_inds: Tensor
    gt_inds: Tensor
    match_scores: Tensor
    num_queries: int
    num_gts: int

    @property
    def num_pos(self) -> int:
        return int(self.query_inds.numel())


@TASK_UTILS.register_module()
class OneToManyAssigner:
    """DAC-DETR's one-to-many assigner ("Stage2Assigner") for the C-Decoder.

    Every query is scored against every GT with ``M[g, q] = iou_weight * IoU(b_q, g) +
    cls_weight * sigmoid(z_q)[c_g]`` (plain IoU). A query is positive for its best GT when
    ``max_g M >= pos_threshold``; each GT's single best query is positive as well, and keeps its
    own best GT, which may be another GT (a low-quality match, k=1); when queries tie for a
    GT's best score, the lowest query index is forced (``argmax``; docs/dac_detr.md compares
    this with the release's ``topk(k=1)``). At most
    ``max_pos_per_img`` positives are kept per image (random subset). Finally each GT with
    ``c`` positives gets instead its top-``min(c, topk)`` queries by ``M`` over all queries, so
    a GT gets 0 to ``topk`` positives and a query can be positive for two GTs.

    The release builds the cap as ``int(0.25 * 300) = 75`` even with 900 queries, so the
    default is 75; random subsampling makes training non-deterministic on crowded images.

    Args:
        iou_weight (float): weight of IoU in M. Defaults to 0.7.
        cls_weight (float): weight of the GT-class probability in M. Defaults to 0.3.
        pos_threshold (float): M threshold of a positive. Defaults to 0.4.
        max_pos_per_img (int, optional): cap on positives per image (None: no cap).
            Defaults to 75.
        topk (int): most positives per GT. Defaults to 6.
        force_best_query (bool): make each GT's best query positive. Defaults to True.

    Shapes (``assign``): ``pred_instances.scores`` (Q, C) class logits and
    ``pred_instances.bboxes`` (Q, 4) xyxy; ``gt_instances.bboxes`` (G, 4) xyxy in the same
    coordinates and ``gt_instances.labels`` (G,) in [0, C).
    """

    def __init__(self,
                 iou_weight: float = 0.7,
                 cls_weight: float = 0.3,
                 pos_threshold: float = 0.4,
                 max_pos_per_img: Optional[int] = 75,
                 topk: int = 6,
                 force_best_query: bool = True) -> None:
        if topk < 1:
            raise ValueError(f'OneToManyAssigner: topk must be >= 1, got {topk}')
        if max_pos_per_img is not None and max_pos_per_img < 1:
            raise ValueError('OneToManyAssigner: max_pos_per_img must be >= 1 or None, got '
                             f'{max_pos_per_img}')
        self.iou_weight = float(iou_weight)
        self.cls_weight = float(cls_weight)
        self.pos_threshold = float(pos_threshold)
        self.max_pos_per_img = max_pos_per_img
        self.topk = int(topk)
        self.force_best_query = force_best_query

    def match_scores(self, pred_instances: InstanceData,
                     gt_instances: InstanceData) -> Tensor:
        """The (G, Q) matching score M (no gradient)."""
        scores, bad_labels = self._scores(pred_instances, gt_instances)
        if bool(bad_labels):
            self._raise_bad_labels(gt_instances.labels, pred_instances.scores.shape[1])
        return scores

    @staticmethod
    def _raise_bad_labels(gt_labels: Tensor, num_classes: int) -> None:
        raise ValueError(
            f'OneToManyAssigner: GT labels must lie in [0, {num_classes}) (the number '
            f'of classes of scores); got {gt_labels.unique().tolist()}')

    def _scores(self, pred_instances: InstanceData, gt_instances: InstanceData):
        """M and a device bool "a GT label is out of range", checked by the caller (M is then
        computed with clamped labels, so nothing reads out of bounds on the device)."""
        logits, pred_boxes = pred_instances.scores, pred_instances.bboxes
        gt_boxes, gt_labels = gt_instances.bboxes, gt_instances.labels
        if logits.dim() != 2 or pred_boxes.shape != (logits.shape[0], 4):
            raise ValueError(
                'OneToManyAssigner: pred_instances need scores (Q, C) logits and bboxes (Q, 4) '
                f'xyxy; got scores {tuple(logits.shape)} and bboxes {tuple(pred_boxes.shape)}')
        if gt_boxes.dim() != 2 or gt_boxes.shape[-1] != 4 or \
                gt_labels.shape != gt_boxes.shape[:1]:
            raise ValueError(
                'OneToManyAssigner: gt_instances need bboxes (G, 4) xyxy and labels (G,); got '
                f'bboxes {tuple(gt_boxes.shape)} and labels {tuple(gt_labels.shape)}')
        num_classes = logits.shape[1]
        bad_labels = ((gt_labels < 0) | (gt_labels >= num_classes)).any()
        with torch.no_grad():
            iou = bbox_overlaps(gt_boxes.float(), pred_boxes.float().detach())  # (G, Q)
            labels = gt_labels.long().clamp(0, max(num_classes - 1, 0))
            prob = logits.detach().float().sigmoid()[:, labels].t()  # (G, Q)
            return self.iou_weight * iou + self.cls_weight * prob, bad_labels

    def assign(self, pred_instances: InstanceData, gt_instances: InstanceData,
               img_meta: Optional[dict] = None, **kwargs) -> OneToManyAssignResult:
        """Assign queries to GTs; returns the positive (query, GT) pairs of one image."""
        scores, bad_labels = self._scores(pred_instances, gt_instances)
        # both input checks in one host sync
        bad_labels, non_finite = torch.stack(
            [bad_labels, ~torch.isfinite(scores).all()]).tolist()
        if bad_labels:
            self._raise_bad_labels(gt_instances.labels, pred_instances.scores.shape[1])
        if non_finite:
            check_finite_cost(scores, 'DAC one-to-many assignment')  # raises
        num_gts, num_queries = scores.shape
        device = scores.device
        empty = torch.zeros(0, dtype=torch.long, device=device)
        if num_gts == 0 or num_queries == 0:
            return OneToManyAssignResult(empty, empty, scores.new_zeros(0), num_queries, num_gts)

        # 1-2. threshold on each query's best GT, plus each GT's best query (keeps its argmax)
        best_score, best_gt = scores.max(dim=0)  # (Q,)
        positive = best_score >= self.pos_threshold
        if self.force_best_query:
            positive[scores.argmax(dim=1)] = True
        pos_queries = positive.nonzero(as_tuple=False).squeeze(1)

        # 3. random cap per image
        if self.max_pos_per_img is not None and pos_queries.numel() > self.max_pos_per_img:
            keep = torch.randperm(pos_queries.numel(), device=device)[:self.max_pos_per_img]
            pos_queries = pos_queries[keep]

        # 4. each GT with c positives gets its top-min(c, topk) queries by M over all queries
        # positives per GT (bincount would sync on CUDA to size its output)
        counts = torch.zeros(num_gts, dtype=torch.long, device=device).scatter_add_(
            0, best_gt[pos_queries], torch.ones_like(pos_queries)).clamp(max=self.topk)
        k = min(self.topk, num_queries)
        top_scores, top_queries = scores.topk(k, dim=1)  # (G, k), sorted descending
        take = torch.arange(k, device=device)[None, :] < counts[:, None]
        gt_inds = torch.arange(num_gts, device=device)[:, None].expand(-1, k)[take]
        return OneToManyAssignResult(top_queries[take], gt_inds, top_scores[take], num_queries,
                                     num_gts)
