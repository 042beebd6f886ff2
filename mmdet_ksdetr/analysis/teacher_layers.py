"""Per-decoder-layer quality of a DETR teacher and what TPRD's refinement changes in it
(``tools/analysis_tools/teacher_layers.py``).

Definitions (the same objects as :mod:`mmdet_ksdetr.distill.tprd.refinement` uses):

* **GT-matched queries of layer i** (``P_i``): the queries that TPRD's teacher-to-GT matcher
  (Hungarian, focal 2 / L1 5 / GIoU 2, or a distiller's own ``teacher_assigner``) assigns to a
  GT when it matches layer ``i`` alone, per image (:func:`~mmdet_ksdetr.distill.tprd.refinement.
  assign_teacher_layers`). Images without GT have none.
* **IoU / score** of a positive ``(k, g)`` of class ``c`` at layer ``j``: plain IoU of query
  ``k``'s layer-``j`` box with ``g``, and ``sigmoid(Z^j[k, c])``, the score of the GT class.
* **Earlier layer j better than layer i** for ``(k, g)`` in ``P_i`` (``j < i``): the same query
  ``k`` at layer ``j`` has a strictly higher IoU with ``g`` *and* a strictly higher score on
  ``c`` than at layer ``i``. A positive is refined exactly when some earlier layer is better.
* **Negatives of layer i**: the other queries of the images that have GT. **Changed** means the
  refined target differs from the raw one (positives: box or logits; negatives: logits).
* **Top score** of a negative: its highest class score ``max_c sigmoid(Z[k, c])``.

Layers are numbered from 1 in the JSON and figures (``layer 1`` = first decoder layer).

JSON schema of ``teacher_layers.json`` (every count summed over the images)::

    {"tool": "teacher_layers", "definitions": {name: sentence},
     "models": [{
        "label", "config", "checkpoint", "source": "detector" | "distiller teacher",
        "assigner": the teacher-to-GT matcher config,
        "num_images", "num_images_with_gt", "num_gt", "num_layers", "num_queries",
        "layers": [{"layer": i, "num_pos", "mean_iou", "mean_score",
                    "refined_mean_iou", "refined_mean_score",
                    "earlier_better_any", "earlier_better_any_share",
                    "pos_changed", "pos_changed_share",
                    "num_neg", "neg_changed", "neg_changed_share",
                    "mean_neg_top_score", "refined_mean_neg_top_score"}, ...],
        "earlier_better": L x L counts, [i-1][j-1] = positives of layer i for which layer j
                          is better (0 where j >= i),
        "earlier_better_share": the same divided by layer i's num_pos (null where j >= i or
                                num_pos is 0)}],
     "figures": [PNG file names]}

Means and shares are ``null`` when their denominator is 0.
"""
from dataclasses import dataclass, fields
from typing import Dict, Iterable, List, Optional

import torch
from torch import Tensor

from mmdet_ksdetr.distill.tprd.refinement import (aligned_iou_cxcywh, assign_teacher_layers,
                                                  gt_from_data_samples, pad_gt,
                                                  refine_teacher_predictions)
from mmdet_ksdetr.utils.errors import InputError

__all__ = ['LayerCounts', 'layer_counts', 'earlier_better_matrix', 'summarise',
           'teacher_of', 'assigner_summary', 'check_teacher', 'rescale_gt_to_input',
           'collect_layer_counts', 'model_summaries', 'DEFINITIONS']

DEFINITIONS = {
    'gt_matched_queries': "P_i: queries Hungarian-matched to a GT by TPRD's teacher-to-GT "
                          'matcher run on decoder layer i alone, per image',
    'iou': "plain IoU of a query's box with its matched GT",
    'score': "sigmoid of the query's logit for its matched GT's class",
    'earlier_better': 'for (k, g) in P_i: layer j < i has a strictly higher IoU with g AND a '
                      'strictly higher score on the class of g for the same query k',
    'pos_changed': 'positives of layer i whose refined box or logits differ from the raw ones',
    'negatives': 'queries not in P_i of images with at least one GT',
    'neg_changed': 'negatives of layer i whose refined logits differ from the raw ones',
    'top_score': 'highest class sigmoid score of a query',
}


@dataclass
class LayerCounts:
    """Sums over images for an ``L``-layer teacher (``[L]`` per layer, ``[L, L]`` target x
    source). Counts are long tensors, sums float64; ``a + b`` adds two batches."""
    num_pos: Tensor
    iou_sum: Tensor
    score_sum: Tensor
    refined_iou_sum: Tensor
    refined_score_sum: Tensor
    earlier_better: Tensor
    earlier_better_any: Tensor
    pos_changed: Tensor
    num_neg: Tensor
    neg_changed: Tensor
    neg_top_score_sum: Tensor
    refined_neg_top_score_sum: Tensor

    def __add__(self, other: 'LayerCounts') -> 'LayerCounts':
        return LayerCounts(**{f.name: getattr(self, f.name) + getattr(other, f.name)
                              for f in fields(self)})

    @property
    def num_layers(self) -> int:
        return self.num_pos.numel()


def _pos_iou_score(logits: Tensor, boxes: Tensor, lab: Tensor, gbox: Tensor):
    """IoU and GT-class score of every layer ``j``'s query against layer ``i``'s matched GT:
    ``[Lj, Li, B, Q]`` each (``lab [Li, B, Q]``, ``gbox [Li, B, Q, 4]``)."""
    L, B, Q, C = logits.shape
    z = logits.unsqueeze(1).expand(L, L, B, Q, C).gather(
        -1, lab.view(1, L, B, Q, 1).expand(L, L, B, Q, 1)).squeeze(-1)
    u = aligned_iou_cxcywh(boxes.unsqueeze(1), gbox.unsqueeze(0))
    return u, z.float().sigmoid()


def earlier_better_matrix(logits: Tensor, boxes: Tensor, pos_gt_inds: Tensor,
                          gt_labels: Tensor, gt_boxes: Tensor) -> Tensor:
    """``[Li, Lj, B, Q]`` bool: query ``q`` is a positive of layer ``i`` and layer ``j < i``
    has a strictly higher IoU with its GT and a strictly higher score on its GT class.

    Args:
        logits: ``[L, B, Q, C]`` raw sigmoid logits; boxes: ``[L, B, Q, 4]`` normalised cxcywh.
        pos_gt_inds: ``[L, B, Q]`` GT index of each layer's match, -1 for none.
        gt_labels / gt_boxes: padded GT ``[B, G]`` / ``[B, G, 4]`` (normalised cxcywh).
    """
    L, B, Q, _ = logits.shape
    pos = pos_gt_inds >= 0
    if gt_labels.size(1) == 0 or not bool(pos.any()):
        return torch.zeros(L, L, B, Q, dtype=torch.bool, device=logits.device)
    g = pos_gt_inds.clamp(min=0)
    batch_idx = torch.arange(B, device=logits.device).view(1, B, 1)
    lab = gt_labels[batch_idx, g].clamp(min=0)
    u, s = _pos_iou_score(logits, boxes, lab, gt_boxes[batch_idx, g])  # [Lj, Li, B, Q]
    u_self = u.diagonal(dim1=0, dim2=1).permute(2, 0, 1)  # [Li, B, Q]
    s_self = s.diagonal(dim1=0, dim2=1).permute(2, 0, 1)
    layer = torch.arange(L, device=logits.device)
    before = (layer.view(L, 1) < layer.view(1, L)).view(L, L, 1, 1)  # [j, i]: j < i
    better = before & pos.unsqueeze(0) & (u > u_self) & (s > s_self)
    return better.transpose(0, 1)  # [Li, Lj, B, Q]


def _own_iou_score(logits: Tensor, boxes: Tensor, lab: Tensor, gbox: Tensor):
    """``[L, B, Q]`` IoU and GT-class score of each layer's own prediction."""
    s = logits.float().gather(-1, lab.unsqueeze(-1)).squeeze(-1).sigmoid()
    return aligned_iou_cxcywh(boxes, gbox), s


def layer_counts(logits: Tensor, boxes: Tensor, pos_gt_inds: Tensor, gt_labels: Tensor,
                 gt_boxes: Tensor, num_gts) -> LayerCounts:
    """Per-layer statistics of one batch of teacher predictions, before and after TPRD's
    refinement (:func:`~mmdet_ksdetr.distill.tprd.refinement.refine_teacher_predictions`).

    Args:
        logits: ``[L, B, Q, C]`` raw sigmoid logits of every decoder layer.
        boxes: ``[L, B, Q, 4]`` normalised cxcywh boxes of every layer.
        pos_gt_inds: ``[L, B, Q]`` per-layer match to GT (-1: none).
        gt_labels / gt_boxes / num_gts: padded GT (see ``pad_gt``), boxes normalised cxcywh.
    """
    refined = refine_teacher_predictions(logits, boxes, pos_gt_inds, gt_labels, gt_boxes,
                                         num_gts)
    logits, boxes = logits.detach(), boxes.detach()
    L, B, Q, _ = logits.shape
    num_gts = torch.as_tensor(num_gts, device=logits.device).long().reshape(-1)
    pos = refined.pos_mask
    neg = ~pos & (num_gts > 0).view(1, B, 1)
    f64 = dict(dtype=torch.float64)
    zero = torch.zeros(L, **f64, device=logits.device)
    iou = score = r_iou = r_score = zero
    if gt_labels.size(1) and bool(pos.any()):
        g = pos_gt_inds.clamp(min=0)
        batch_idx = torch.arange(B, device=logits.device).view(1, B, 1)
        lab, gbox = gt_labels[batch_idx, g].clamp(min=0), gt_boxes[batch_idx, g]
        u, s = _own_iou_score(logits, boxes, lab, gbox)
        ru, rs = _own_iou_score(refined.logits, refined.boxes, lab, gbox)
        iou, score, r_iou, r_score = (
            (x.double() * pos).sum((1, 2)) for x in (u, s, ru, rs))
    better = earlier_better_matrix(logits, boxes, pos_gt_inds, gt_labels, gt_boxes)
    changed = ((refined.logits != logits).any(-1) | (refined.boxes != boxes).any(-1))
    top = logits.float().sigmoid().amax(-1).double()
    r_top = refined.logits.float().sigmoid().amax(-1).double()
    return LayerCounts(
        num_pos=pos.sum((1, 2)), iou_sum=iou, score_sum=score, refined_iou_sum=r_iou,
        refined_score_sum=r_score, earlier_better=better.sum((2, 3)),
        earlier_better_any=better.any(1).sum((1, 2)), pos_changed=(changed & pos).sum((1, 2)),
        num_neg=neg.sum((1, 2)), neg_changed=(changed & neg).sum((1, 2)),
        neg_top_score_sum=(top * neg).sum((1, 2)),
        refined_neg_top_score_sum=(r_top * neg).sum((1, 2)))


def _ratio(num, den) -> Optional[float]:
    return float(num) / float(den) if float(den) > 0 else None


def summarise(counts: LayerCounts, **info) -> Dict:
    """The JSON entry of one model (schema in the module docstring); ``info`` adds its
    identity and image counts (``label``, ``config``, ``num_images``, ...)."""
    c = counts
    layers = []
    for i in range(c.num_layers):
        p, n = int(c.num_pos[i]), int(c.num_neg[i])
        layers.append(dict(
            layer=i + 1, num_pos=p, mean_iou=_ratio(c.iou_sum[i], p),
            mean_score=_ratio(c.score_sum[i], p), refined_mean_iou=_ratio(c.refined_iou_sum[i], p),
            refined_mean_score=_ratio(c.refined_score_sum[i], p),
            earlier_better_any=int(c.earlier_better_any[i]),
            earlier_better_any_share=_ratio(c.earlier_better_any[i], p),
            pos_changed=int(c.pos_changed[i]), pos_changed_share=_ratio(c.pos_changed[i], p),
            num_neg=n, neg_changed=int(c.neg_changed[i]),
            neg_changed_share=_ratio(c.neg_changed[i], n),
            mean_neg_top_score=_ratio(c.neg_top_score_sum[i], n),
            refined_mean_neg_top_score=_ratio(c.refined_neg_top_score_sum[i], n)))
    matrix = c.earlier_better.tolist()
    share = [[_ratio(matrix[i][j], c.num_pos[i]) if j < i else None
              for j in range(c.num_layers)] for i in range(c.num_layers)]
    return dict(info, num_layers=c.num_layers, layers=layers, earlier_better=matrix,
                earlier_better_share=share)


# ------------------------------- running a teacher -------------------------------------------

def teacher_of(model):
    """``(detector, assigner, source)``: a detector with TPRD's default teacher-to-GT matcher
    (``source='detector'``), or an mmrazor distiller's teacher with the distiller's own matcher
    (``'distiller teacher'``)."""
    from mmdet.models.detectors.base import BaseDetector

    from mmdet_ksdetr.distill.tprd.refinement import TeacherPredictionRefiner
    if isinstance(model, BaseDetector):
        return model, TeacherPredictionRefiner().assigner, 'detector'
    teacher = getattr(model, 'teacher', None)
    if isinstance(teacher, BaseDetector):
        assigner = getattr(getattr(model, 'tprd_targets', None), 'assigner', None)
        return (teacher, assigner or TeacherPredictionRefiner().assigner,
                'distiller teacher')
    raise InputError(f'{type(model).__name__} is neither an mmdet detector nor a distiller '
                     f'with a teacher detector: give a DETR teacher config and its checkpoint')


def assigner_summary(assigner) -> Dict:
    """The matcher's type and its match costs with their weights (for the JSON)."""
    costs = [dict(type=type(mc).__name__, weight=float(getattr(mc, 'weight', 1.0)))
             for mc in getattr(assigner, 'match_costs', [])]
    return dict(type=type(assigner).__name__, match_costs=costs)


def check_teacher(detector, name: str) -> int:
    """Refuse a detector this analysis cannot use; returns its number of decoder layers."""
    from mmdet_ksdetr.distill.core import check_detr
    try:
        check_detr(detector, 'teacher')
    except TypeError as e:
        reason = str(e).split('. DETR internals need')[0]
        raise InputError(f'{name}: {reason}; give a DETR-family teacher (Deformable DETR, '
                         f'DAB-DETR, DINO, ...) or a distiller config with one') from e
    loss_cls = getattr(detector.bbox_head, 'loss_cls', None)
    if not getattr(loss_cls, 'use_sigmoid', False):
        raise InputError(f'{name}: {type(detector.bbox_head).__name__} classifies with a '
                         f'softmax; TPRD compares sigmoid class scores (focal-loss heads: '
                         f'Deformable DETR, DAB-DETR, DINO, ...)')
    layers = getattr(getattr(detector, 'decoder', None), 'layers', None)
    num_layers = len(layers) if layers is not None else 0
    if num_layers < 2:
        raise InputError(f'{name}: the decoder has {num_layers} layer(s); comparing decoder '
                         f'layers needs at least 2')
    return num_layers


def rescale_gt_to_input(data_samples, pipeline) -> None:
    """Bring each sample's GT boxes into network-input (``img_shape``) coordinates, in place:
    scaled by its ``scale_factor`` when ``pipeline`` loads annotations after ``Resize`` (mmdet's
    test pipelines; the boxes are in original-image pixels), left as they are otherwise."""
    from mmdet.structures.bbox import scale_boxes

    from mmdet_ksdetr.analysis.common import gt_loaded_after_resize
    if not gt_loaded_after_resize(pipeline):
        return
    for ds in data_samples:
        sf = ds.metainfo.get('scale_factor')
        if sf is None or 'gt_instances' not in ds:
            continue
        b = ds.gt_instances.bboxes
        ds.gt_instances.bboxes = scale_boxes(b if hasattr(b, 'rescale_') else b.float(),
                                             sf[:2])


@torch.no_grad()
def collect_layer_counts(detector, assigner, batches: Iterable[Dict], pipeline):
    """Run ``detector`` (eval mode) on ``batches`` (from ``val_batches``) and sum
    :func:`layer_counts` -> ``(LayerCounts, info)`` (``pipeline``: the transforms that made
    the batches, see :func:`rescale_gt_to_input`); ``info`` has ``num_images``,
    ``num_images_with_gt``, ``num_gt`` and ``num_queries``. No GT box at all is an error."""
    from mmdet_ksdetr.distill.core import get_detr_internals
    total: Optional[LayerCounts] = None
    info = dict(num_images=0, num_images_with_gt=0, num_gt=0, num_queries=None)
    for batch in batches:
        data = detector.data_preprocessor(batch, False)
        samples = data['data_samples']
        rescale_gt_to_input(samples, pipeline)
        out = get_detr_internals(detector, data['inputs'], samples)
        logits, boxes = out.cls_logits.float(), out.bbox_preds.float()
        pos_gt_inds = assign_teacher_layers(logits, boxes, samples, assigner)
        labels, gt_boxes = gt_from_data_samples(samples)
        gt_labels, gt_boxes, num_gts = pad_gt(labels, gt_boxes, device=logits.device)
        counts = layer_counts(logits, boxes, pos_gt_inds, gt_labels, gt_boxes, num_gts)
        counts = LayerCounts(**{f.name: getattr(counts, f.name).cpu() for f in fields(counts)})
        total = counts if total is None else total + counts
        info['num_images'] += len(samples)
        info['num_images_with_gt'] += int((num_gts > 0).sum())
        info['num_gt'] += int(num_gts.sum())
        info['num_queries'] = out.num_queries
    if info['num_gt'] == 0:
        raise InputError(f'none of the {info["num_images"]} validation images has a GT box: '
                         f'nothing to match the teacher to (use more --num-images or another '
                         f'data set)')
    return total, info


def model_summaries(entries: List[Dict]) -> Dict:
    """The whole ``teacher_layers.json`` object for the per-model ``entries``."""
    return dict(tool='teacher_layers', definitions=DEFINITIONS, models=entries, figures=[])
