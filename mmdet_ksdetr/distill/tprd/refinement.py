"""TPRD: teacher prediction refinement.

A DETR teacher's decoder layers do not improve monotonically: for a given query slot an
*earlier* layer sometimes has a better box and a higher score on the matched GT, and a false
positive is sometimes less confident in an earlier layer. TPRD therefore rewrites the teacher
target of layer ``i`` before a distiller uses it, borrowing only from the same query slot in
layers ``j <= i``:

* **positives** ``(k, g)`` of the layer-``i`` Hungarian match to GT (class ``c``): among the
  layers with *strictly* higher IoU to ``g`` and *strictly* higher ``sigmoid`` score on ``c``,
  take the one with the highest IoU (ties: the earliest layer) and copy its box and its
  class-``c`` logit;
* **negatives** (every other query of an image that has GT): among the layers whose top class
  equals layer ``i``'s top class ``a`` and whose top logit is *strictly* lower, take the lowest
  (ties: the earliest) and copy its class-``a`` logit. The box is kept.

Layer 1 never changes (strict inequalities), images without GT are left untouched, and there
are no thresholds. The refinement is vectorised over layers, queries and images: the
``(source layer j) x (target layer i)`` comparisons are one broadcast, the choice of ``j*`` is a
masked arg-max, and the writes are single ``index_put`` calls. Only the per-layer Hungarian
matching to GT (scipy, CPU float32) loops over ``layers x images``.

Shapes: ``logits [L, B, Q, C]`` (raw, sigmoid-trained), ``boxes [L, B, Q, 4]`` (normalised
cxcywh), GT padded to ``[B, G]`` / ``[B, G, 4]`` (normalised cxcywh).
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.structures import InstanceData
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from mmdet_ksdetr.utils.device import to_device, to_host
from mmdet_ksdetr.utils.divergence import check_finite_cost

__all__ = [
    'RefinedTeacher', 'refine_teacher_predictions', 'assign_teacher_layers', 'pad_gt',
    'gt_from_data_samples', 'TeacherPredictionRefiner', 'aligned_iou_cxcywh'
]

#: the teacher-to-GT matcher of TPRD: focal cost 2 (alpha .25, gamma 2), L1 5, GIoU 2.
DEFAULT_TEACHER_ASSIGNER = dict(
    type='HungarianAssigner',
    match_costs=[
        dict(type='FocalLossCost', weight=2.0, alpha=0.25, gamma=2.0),
        dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
        dict(type='IoUCost', iou_mode='giou', weight=2.0)
    ])


@dataclass
class RefinedTeacher:
    """Teacher targets after TPRD (or the raw ones with the GT assignment, see
    :meth:`TeacherPredictionRefiner.__call__`).

    Attributes:
        logits (Tensor): ``[L, B, Q, C]`` refined logits (no grad).
        boxes (Tensor): ``[L, B, Q, 4]`` refined normalised cxcywh boxes (no grad).
        pos_gt_inds (Tensor): ``[L, B, Q]`` long, index of the GT that teacher query ``q`` of
            layer ``l`` is Hungarian-matched to, ``-1`` for the others.
        pos_labels (Tensor): ``[L, B, Q]`` long, class of that GT, ``-1`` for the others.
        refined (bool): the logits / boxes are TPRD-refined (False: the raw teacher's, with
            the assignment).
    """
    logits: Tensor
    boxes: Tensor
    pos_gt_inds: Tensor
    pos_labels: Tensor
    refined: bool = True

    @property
    def pos_mask(self) -> Tensor:
        """``[L, B, Q]`` bool: the teacher query is a positive (in ``P_i``)."""
        return self.pos_gt_inds >= 0

    @property
    def num_layers(self) -> int:
        return self.logits.size(0)


def _cxcywh_to_xyxy(b: Tensor) -> Tensor:
    cx, cy, w, h = b.unbind(-1)
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], -1)


def aligned_iou_cxcywh(a: Tensor, b: Tensor, eps: float = 1e-6) -> Tensor:
    """Plain IoU of broadcastable cxcywh boxes ``a[..., 4]`` and ``b[..., 4]`` -> ``[...]``.

    IoU is invariant under per-axis scaling, so normalised boxes give the pixel IoU."""
    a = _cxcywh_to_xyxy(a.float())
    b = _cxcywh_to_xyxy(b.float())
    lt = torch.maximum(a[..., :2], b[..., :2])
    rb = torch.minimum(a[..., 2:], b[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[..., 2:] - a[..., :2]).clamp(min=0).prod(-1)
    area_b = (b[..., 2:] - b[..., :2]).clamp(min=0).prod(-1)
    return inter / (area_a + area_b - inter).clamp(min=eps)


def _check_inputs(logits, boxes, pos_gt_inds, gt_labels, gt_boxes, num_gts):
    if logits.dim() != 4:
        raise ValueError(f'TPRD refinement: teacher logits must be [layers, batch, queries, '
                         f'classes], got shape {tuple(logits.shape)}')
    L, B, Q, _ = logits.shape
    if tuple(boxes.shape) != (L, B, Q, 4):
        raise ValueError(f'TPRD refinement: teacher boxes must be [layers, batch, queries, 4] '
                         f'= {(L, B, Q, 4)} to match the logits, got {tuple(boxes.shape)}')
    if tuple(pos_gt_inds.shape) != (L, B, Q):
        raise ValueError(f'TPRD refinement: pos_gt_inds must be [layers, batch, queries] = '
                         f'{(L, B, Q)}, got {tuple(pos_gt_inds.shape)}')
    if gt_labels.dim() != 2 or gt_labels.size(0) != B or tuple(
            gt_boxes.shape) != (B, gt_labels.size(1), 4):
        raise ValueError(f'TPRD refinement: padded GT must be labels [batch, G] and boxes '
                         f'[batch, G, 4] with batch={B}, got {tuple(gt_labels.shape)} and '
                         f'{tuple(gt_boxes.shape)} (use pad_gt())')
    if tuple(num_gts.shape) != (B, ):
        raise ValueError(f'TPRD refinement: num_gts must have one entry per image ({B}), '
                         f'got shape {tuple(num_gts.shape)}')
    max_label = gt_labels.max() if gt_labels.numel() else gt_labels.new_full((), -1)
    bad_index = (pos_gt_inds >= num_gts.view(1, B, 1)).any()
    max_label, bad_index = torch.stack([max_label.long().to(bad_index.device),
                                        bad_index.long()]).tolist()  # the one sync
    if max_label >= logits.size(-1):
        raise ValueError(f'TPRD refinement: a GT label ({max_label}) is >= the '
                         f'number of teacher classes ({logits.size(-1)}); check num_classes')
    if bad_index:
        raise ValueError('TPRD refinement: pos_gt_inds refers to a GT index >= the number of '
                         'GT boxes of its image (num_gts); the assignment and the GT differ')


def _put_class_logit(logits: Tensor, classes: Tensor, values: Tensor, where: Tensor) -> Tensor:
    """``logits[l, b, q, classes[l, b, q]] = values[l, b, q]`` where ``where`` is True."""
    current = logits.gather(-1, classes[..., None]).squeeze(-1)
    new = torch.where(where, values.to(logits.dtype), current)
    return logits.scatter(-1, classes[..., None], new[..., None])


def refine_teacher_predictions(logits: Tensor, boxes: Tensor, pos_gt_inds: Tensor,
                               gt_labels: Tensor, gt_boxes: Tensor,
                               num_gts: Union[Tensor, Sequence[int]]) -> RefinedTeacher:
    """Refine per-layer teacher predictions (TPRD), fully vectorised.

    Args:
        logits (Tensor): ``[L, B, Q, C]`` teacher logits of every decoder layer.
        boxes (Tensor): ``[L, B, Q, 4]`` teacher boxes, normalised cxcywh.
        pos_gt_inds (Tensor): ``[L, B, Q]`` long, the layer-``l`` Hungarian match of teacher
            query ``q`` to a GT of image ``b`` (index into that image's GT), ``-1`` if none.
        gt_labels (Tensor): ``[B, G]`` long GT classes, padded (see :func:`pad_gt`).
        gt_boxes (Tensor): ``[B, G, 4]`` GT boxes, normalised cxcywh, padded.
        num_gts (Tensor | list[int]): ``[B]`` number of real GT per image; images with 0 are
            not refined at all (negatives included).

    Returns:
        RefinedTeacher: refined logits/boxes (detached, same dtype) and the assignment.
    """
    num_gts = torch.as_tensor(num_gts, device=logits.device).long().reshape(-1)
    _check_inputs(logits, boxes, pos_gt_inds, gt_labels, gt_boxes, num_gts)
    logits = logits.detach()
    boxes = boxes.detach()
    L, B, Q, C = logits.shape
    device = logits.device
    pos_gt_inds = pos_gt_inds.to(device).long()
    pos = pos_gt_inds >= 0  # [L, B, Q]
    has_gt = (num_gts > 0).view(1, B, 1)

    layer = torch.arange(L, device=device)
    # earlier[j, i]: source layer j may be borrowed from by target layer i (j <= i; j == i never
    # passes the strict tests below, so it is harmless to include).
    earlier = (layer.view(L, 1) <= layer.view(1, L)).view(L, L, 1, 1)
    refined_logits = logits.clone()
    refined_boxes = boxes.clone()

    # ---------------- positives: borrow a better box and target-class logit -----------------
    # (no data-dependent branches or nonzero: updates are torch.where over all queries)
    if gt_labels.size(1) > 0:
        g = pos_gt_inds.clamp(min=0)  # [L, B, Q]
        batch_idx = torch.arange(B, device=device).view(1, B, 1)
        lab = gt_labels.to(device).long()[batch_idx, g].clamp(min=0)  # [L, B, Q]
        gbox = gt_boxes.to(device)[batch_idx, g]  # [L, B, Q, 4]
        # z[j, i, b, q] = Z^j[b, q, c(i, b, q)]; u[j, i, b, q] = IoU(B^j[b, q], gt(i, b, q))
        z = logits.unsqueeze(1).expand(L, L, B, Q, C).gather(
            -1, lab.view(1, L, B, Q, 1).expand(L, L, B, Q, 1)).squeeze(-1)
        s = z.float().sigmoid()
        u = aligned_iou_cxcywh(boxes.unsqueeze(1), gbox.unsqueeze(0))  # [Lj, Li, B, Q]
        s_self = s.diagonal(dim1=0, dim2=1).permute(2, 0, 1)  # [Li, B, Q] = s[i, i]
        u_self = u.diagonal(dim1=0, dim2=1).permute(2, 0, 1)
        cand = earlier & pos.unsqueeze(0) & (u > u_self.unsqueeze(0)) & (s > s_self.unsqueeze(0))
        best_u = u.masked_fill(~cand, -1.0).amax(0)  # IoU >= 0
        is_best = cand & (u == best_u.unsqueeze(0))
        j_star = torch.where(is_best, layer.view(L, 1, 1, 1), L).amin(0)  # [Li, B, Q]
        upd = j_star < L
        js = j_star.clamp(max=L - 1)  # [Li, B, Q]
        borrowed_boxes = boxes.gather(0, js[..., None].expand(L, B, Q, 4))
        refined_boxes = torch.where(upd[..., None], borrowed_boxes, refined_boxes)
        borrowed_logit = z.gather(0, js[None]).squeeze(0)  # z[j*, i, b, q]
        refined_logits = _put_class_logit(refined_logits, lab, borrowed_logit, upd)

    # -------- negatives: lower a false positive's confidence to an earlier layer's ----------
    neg = (~pos) & has_gt
    if L > 1:
        m, a = logits.max(-1)  # [L, B, Q]; ties -> first class
        m_j, m_i = m.unsqueeze(1), m.unsqueeze(0)  # [Lj, 1, B, Q], [1, Li, B, Q]
        cand = earlier & neg.unsqueeze(0) & (a.unsqueeze(1) == a.unsqueeze(0)) & (m_j < m_i)
        m_jj = m_j.expand(L, L, B, Q)
        best_m = m_jj.masked_fill(~cand, float('inf')).amin(0)  # [Li, B, Q]
        upd = cand.any(0)
        # Z^{j*}[a_i] = m_{j*} because a_{j*} = a_i: the minimum value is the new logit.
        refined_logits = _put_class_logit(refined_logits, a, best_m, upd)

    pos_labels = torch.full_like(pos_gt_inds, -1)
    if gt_labels.size(1) > 0:
        pos_labels = torch.where(pos, lab, pos_labels)
    return RefinedTeacher(refined_logits, refined_boxes, pos_gt_inds, pos_labels)


def pad_gt(gt_labels: Sequence[Tensor], gt_boxes: Sequence[Tensor],
           device=None) -> Tuple[Tensor, Tensor, Tensor]:
    """Pad per-image GT lists to ``labels [B, G]`` (-1 padding), ``boxes [B, G, 4]`` and
    ``num_gts [B]``."""
    if len(gt_labels) != len(gt_boxes):
        raise ValueError(f'pad_gt: {len(gt_labels)} label tensors but {len(gt_boxes)} box '
                         f'tensors; give one of each per image')
    B = len(gt_labels)
    if device is None:
        device = gt_boxes[0].device if B else 'cpu'
    counts = [len(lbl) for lbl in gt_labels]  # host ints: no device sync
    num = torch.tensor(counts, device=device, dtype=torch.long)
    G = max(counts, default=0)
    labels = torch.full((B, G), -1, dtype=torch.long, device=device)
    boxes = torch.zeros((B, G, 4), dtype=torch.float32, device=device)
    for b, n in enumerate(counts):  # per image, not per query
        if n:
            labels[b, :n] = gt_labels[b].to(device).long()
            boxes[b, :n] = gt_boxes[b].to(device).float()
    return labels, boxes, num


def gt_from_data_samples(batch_data_samples) -> Tuple[List[Tensor], List[Tensor]]:
    """GT labels and normalised cxcywh boxes (divided by ``img_shape`` (w, h), as the mmdet
    DETR heads do) of every image."""
    labels, boxes = [], []
    for ds in batch_data_samples:
        h, w = ds.metainfo['img_shape'][:2]
        b = ds.gt_instances.bboxes
        b = b.tensor if hasattr(b, 'tensor') else b
        b = b.float()
        factor = b.new_tensor([w, h, w, h])
        xyxy = b / factor
        cxcywh = torch.stack([(xyxy[:, 0] + xyxy[:, 2]) / 2, (xyxy[:, 1] + xyxy[:, 3]) / 2,
                              xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]], -1)
        labels.append(ds.gt_instances.labels)
        boxes.append(cxcywh)
    return labels, boxes


def assign_teacher_layers(logits: Tensor, boxes: Tensor, batch_data_samples,
                          assigner) -> Tensor:
    """Hungarian-match every teacher layer to the GT of every image (the refinement's first step).

    Args:
        logits (Tensor): ``[L, B, Q, C]``; boxes (Tensor): ``[L, B, Q, 4]`` normalised cxcywh.
        batch_data_samples (list[DetDataSample]): with ``gt_instances`` and ``img_shape``.
        assigner: an mmdet ``HungarianAssigner`` (see ``DEFAULT_TEACHER_ASSIGNER``) or any
            assigner with mmdet's ``assign`` interface.

    For a ``HungarianAssigner`` the match costs of all layers of an image are computed in one
    call (the layers' predictions stacked along the query axis) and only the assignment runs
    per layer (scipy, float32 on CPU); the result equals ``assigner.assign`` layer by layer.

    Returns:
        Tensor: ``[L, B, Q]`` long, matched GT index or -1.
    """
    L, B, Q, C = logits.shape
    if len(batch_data_samples) != B:
        raise ValueError(f'assign_teacher_layers: {B} images in the predictions but '
                         f'{len(batch_data_samples)} data samples')
    out = torch.full((L, B, Q), -1, dtype=torch.long, device=logits.device)
    xyxy = _cxcywh_to_xyxy(boxes.detach().float())
    logits = logits.detach().float()
    match_costs = getattr(assigner, 'match_costs', None)
    costs, cost_images = [], []  # HungarianAssigner: every image's costs, solved at the end
    for b, ds in enumerate(batch_data_samples):
        gt = ds.gt_instances
        if len(gt) == 0:
            continue
        h, w = ds.metainfo['img_shape'][:2]
        factor = xyxy.new_tensor([w, h, w, h])
        gt_bboxes = gt.bboxes.tensor if hasattr(gt.bboxes, 'tensor') else gt.bboxes
        gt_inst = InstanceData(bboxes=gt_bboxes.float(), labels=gt.labels)
        if match_costs is not None:  # mmdet HungarianAssigner: batched costs
            pred = InstanceData(scores=logits[:, b].reshape(L * Q, C),
                                bboxes=xyxy[:, b].reshape(L * Q, 4) * factor)
            cost = sum(mc(pred_instances=pred, gt_instances=gt_inst, img_meta=ds.metainfo)
                       for mc in match_costs)
            costs.append(cost.view(L, Q, -1).float())
            cost_images.append(b)
            continue
        for layer in range(L):
            pred = InstanceData(scores=logits[layer, b], bboxes=xyxy[layer, b] * factor)
            res = assigner.assign(pred_instances=pred, gt_instances=gt_inst,
                                  img_meta=ds.metainfo)
            out[layer, b] = (res.gt_inds - 1).clamp(min=-1).to(out.device)
    if costs:
        _solve_layers_into(out, costs, cost_images)
    return out


def _solve_layers_into(out: Tensor, costs: List[Tensor], images: List[int]) -> None:
    """Hungarian assignment of every layer of every image in ``costs`` (each (L, Q, G_b),
    for image ``images[i]``), written into ``out`` (L, B, Q): one device-to-host copy of all
    costs and one host-to-device copy of all matches."""
    L = out.shape[0]
    layer_idx, image_idx, rows_idx, cols_idx = [], [], [], []
    for b, cost in zip(images, to_host(*costs)):
        check_finite_cost(cost, 'TPRD teacher-to-GT matching')
        for layer in range(L):
            rows, cols = linear_sum_assignment(cost[layer])
            layer_idx.append(np.full(len(rows), layer))
            image_idx.append(np.full(len(rows), b))
            rows_idx.append(rows)
            cols_idx.append(cols)
    li, bi, qi, gi = to_device([np.concatenate(x) for x in (layer_idx, image_idx, rows_idx,
                                                            cols_idx)], out.device)
    out[li, bi, qi] = gi


class TeacherPredictionRefiner:
    """Runs the TPRD pipeline on a teacher's per-layer outputs: Hungarian match of every teacher
    layer to GT, then :func:`refine_teacher_predictions`.

    Args:
        assigner (dict): mmdet ``TASK_UTILS`` config of the teacher-to-GT matcher
            (default: focal 2 / L1 5 / GIoU 2, as in TPRD).

    Call with ``logits [L, B, Q, C]``, ``boxes [L, B, Q, 4]`` (normalised cxcywh) and the
    batch's data samples; ``refine=False`` returns the raw teacher outputs with the assignment
    (for baselines that only need the teacher's positives).
    """

    def __init__(self, assigner: Optional[dict] = None):
        from mmdet.registry import TASK_UTILS
        from mmengine.registry import DefaultScope

        # built from mmdet's registry even inside an mmrazor-scoped algorithm
        with DefaultScope.overwrite_default_scope('mmdet'):
            self.assigner = TASK_UTILS.build(assigner or DEFAULT_TEACHER_ASSIGNER)

    @torch.no_grad()
    def __call__(self, logits: Tensor, boxes: Tensor, batch_data_samples,
                 refine: bool = True) -> RefinedTeacher:
        pos_gt_inds = assign_teacher_layers(logits, boxes, batch_data_samples, self.assigner)
        labels, gt_boxes = gt_from_data_samples(batch_data_samples)
        gt_labels, gt_boxes, num_gts = pad_gt(labels, gt_boxes, device=logits.device)
        if refine:
            return refine_teacher_predictions(logits, boxes, pos_gt_inds, gt_labels, gt_boxes,
                                              num_gts)
        batch_idx = torch.arange(logits.size(1), device=logits.device).view(1, -1, 1)
        pos = pos_gt_inds >= 0
        if gt_labels.size(1):
            pos_labels = torch.where(pos, gt_labels[batch_idx, pos_gt_inds.clamp(min=0)],
                                     torch.full_like(pos_gt_inds, -1))
        else:
            pos_labels = torch.full_like(pos_gt_inds, -1)
        return RefinedTeacher(logits.detach(), boxes.detach(), pos_gt_inds, pos_labels,
                              refined=False)
