"""How many decoder queries gather around each ground-truth object, and how good the closest
one is: the numbers behind ``tools/analysis_tools/query_affinity.py`` (DAC-DETR's analysis of
"the averaged number of queries that have large affinity with each object").

Definitions (one model, one decoder layer l, one non-ignored GT object g of class c_g; every
box in the original image's pixels):

* the predicted box of query q at layer l is the head's normalised ``(cx, cy, w, h)`` turned
  into ``(x1, y1, x2, y2)`` times the resized image's ``(w, h)`` (``img_shape``), clipped to
  it, divided by ``scale_factor``: exactly how mmdet's DETR heads turn the last layer into
  detections (``predict_by_feat`` with ``rescale=True``);
* ``IoU(q, g)``: mmdet's ``bbox_overlaps`` (mode ``iou``) of that box and the GT box;
* ``count[l, g, t] = #{q : IoU(q, g) > t}`` (strictly above) for every threshold t; the
  "average number of queries per object" of layer l at t is its mean over all GT objects of
  all images;
* the closest query ``q* = argmax_q IoU(q, g)`` (the lowest query index among ties);
  ``best_iou = IoU(q*, g)``; ``best_score`` = the probability of the GT's class for q*:
  ``sigmoid(logit[q*, c_g])`` for sigmoid (focal-loss) heads, ``softmax(logits[q*])[c_g]``
  for softmax heads (DETR).

JSON (``query_affinity.json``, written by the tool)::

    {"definition": "...", "thresholds": [0.5, 0.6, 0.7, 0.8], "num_images": 24,
     "hist_bins": [0.0, 0.05, ..., 1.0],
     "models": {LABEL: {
         "config": "...", "checkpoint": "...", "num_layers": L, "num_queries": N,
         "num_objects": M,
         "avg_queries_per_object": [[per threshold] per layer],     # L x T
         "mean_best_iou": [per layer], "mean_best_score": [per layer],
         "best_iou_hist": [[counts per bin] per layer],             # L x len(hist_bins) - 1
         "best_score_hist": [[counts per bin] per layer],
         "objects": [{"image": "path", "gt_index": j, "label": c,
                      "bbox": [x1, y1, x2, y2],
                      "counts": [[per threshold] per layer],
                      "best_iou": [per layer], "best_score": [per layer],
                      "best_query": [per layer]}, ...],
         "overlay": [{"image": "path", "layer": l, "threshold": t,
                      "gt_bboxes": [[x1, y1, x2, y2], ...],
                      "query_bboxes": [[x1, y1, x2, y2], ...]}, ...]}}}

Every aggregate is recomputable from ``objects`` (:func:`summarize`); histogram bins are
``[b_i, b_i+1)`` except the last, which holds 1.0.
"""
from typing import Dict, List, Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = ['THRESHOLDS', 'HIST_BINS', 'DEFINITION', 'boxes_to_original', 'gt_class_probs',
           'object_affinity', 'summarize', 'overlay_boxes', 'image_affinity', 'batch_affinity']

#: IoU thresholds of the "queries per object" curve
THRESHOLDS = (0.5, 0.6, 0.7, 0.8)
#: bin edges of the best-IoU and best-score histograms
HIST_BINS = tuple(round(i * 0.05, 2) for i in range(21))

DEFINITION = (
    'Per decoder layer and non-ignored GT object, boxes in original-image pixels (normalised '
    'cx,cy,w,h -> x1y1x2y2 times img_shape, clipped, divided by scale_factor, as mmdet\'s '
    'predict with rescale). counts[t] = number of queries whose box has IoU > t with the GT; '
    'best_iou = max IoU over queries (closest query, lowest index on ties); best_score = that '
    'query\'s probability of the GT class (sigmoid of its logit; softmax for softmax heads).')


def boxes_to_original(bbox_preds: Tensor, img_shape: Sequence[int],
                      scale_factor: Sequence[float]) -> Tensor:
    """Normalised ``(cx, cy, w, h)`` boxes (..., 4) relative to ``img_shape`` ``(h, w)`` ->
    ``(x1, y1, x2, y2)`` in original-image pixels (clipped to the resized image, then divided by
    ``scale_factor`` ``(w_scale, h_scale)``)."""
    from mmdet.structures.bbox import bbox_cxcywh_to_xyxy
    h, w = float(img_shape[0]), float(img_shape[1])
    boxes = bbox_cxcywh_to_xyxy(bbox_preds.float())
    size = boxes.new_tensor([w, h, w, h])
    boxes = torch.minimum(boxes * size, size).clamp(min=0)
    sw, sh = float(scale_factor[0]), float(scale_factor[1])
    return boxes / boxes.new_tensor([sw, sh, sw, sh])


def gt_class_probs(cls_logits: Tensor, labels: Tensor, use_sigmoid: bool = True) -> Tensor:
    """(L, N, C) logits and (M,) GT labels -> (L, N, M): each query's probability of each GT's
    class (sigmoid, or softmax over the C channels for a softmax head)."""
    num_classes = cls_logits.shape[-1] - (0 if use_sigmoid else 1)
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f'GT labels {labels.tolist()} outside the head\'s {num_classes} '
                         f'classes: the model and the dataset do not fit')
    probs = cls_logits.float().sigmoid() if use_sigmoid else cls_logits.float().softmax(-1)
    return probs[..., labels.long()]


def object_affinity(pred_boxes: Tensor, gt_boxes: Tensor, gt_probs: Tensor,
                    thresholds: Sequence[float] = THRESHOLDS) -> Dict[str, Tensor]:
    """Per layer and GT: the count of queries above each IoU threshold and the closest query.

    Args:
        pred_boxes: (L, N, 4) ``x1y1x2y2`` query boxes of every decoder layer.
        gt_boxes: (M, 4) ``x1y1x2y2`` GT boxes (same coordinates).
        gt_probs: (L, N, M) each query's score of each GT's class (:func:`gt_class_probs`).
        thresholds: IoU thresholds t (a query counts when IoU > t).

    Returns:
        ``counts`` (L, M, T) long, ``best_iou`` (L, M), ``best_score`` (L, M), ``best_query``
        (L, M) long (lowest index among equal IoUs).
    """
    from mmdet.structures.bbox import bbox_overlaps
    num_layers, num_queries = pred_boxes.shape[:2]
    num_gts = gt_boxes.shape[0]
    if gt_probs.shape != (num_layers, num_queries, num_gts):
        raise ValueError(f'gt_probs has shape {tuple(gt_probs.shape)}, expected '
                         f'{(num_layers, num_queries, num_gts)}')
    ious = bbox_overlaps(pred_boxes.float(), gt_boxes.float()[None].expand(num_layers, -1, -1))
    t = ious.new_tensor(list(thresholds))
    counts = (ious[..., None] > t).sum(dim=1)  # (L, M, T)
    best_iou = ious.amax(dim=1)
    # argmax returns the first maximal index (documented), i.e. the lowest query among ties
    best_query = ious.argmax(dim=1)
    best_score = gt_probs.float().gather(1, best_query[:, None, :]).squeeze(1)
    return dict(counts=counts, best_iou=best_iou, best_score=best_score, best_query=best_query)


def _histogram(values: np.ndarray, bins: Sequence[float]) -> List[int]:
    counts, _ = np.histogram(values, bins=np.asarray(bins, dtype=np.float64))
    return [int(c) for c in counts]


def summarize(objects: List[Dict], num_layers: int, thresholds: Sequence[float] = THRESHOLDS,
              bins: Sequence[float] = HIST_BINS) -> Dict:
    """The aggregates of the JSON from its per-object records (``counts`` L x T,
    ``best_iou`` / ``best_score`` per layer): ``avg_queries_per_object`` (L x T),
    ``mean_best_iou``, ``mean_best_score`` (per layer, ``None`` without objects) and the
    histograms ``best_iou_hist`` / ``best_score_hist`` (L x bins)."""
    def column(key):
        return np.asarray([o[key] for o in objects], dtype=np.float64).reshape(
            len(objects), num_layers, -1)

    def mean(values):
        return float(values.mean()) if len(objects) else None

    counts = column('counts')
    ious, scores = column('best_iou')[..., 0], column('best_score')[..., 0]
    layers = range(num_layers)
    return dict(
        avg_queries_per_object=[[mean(counts[:, k, i]) for i in range(len(thresholds))]
                                for k in layers],
        mean_best_iou=[mean(ious[:, k]) for k in layers],
        mean_best_score=[mean(scores[:, k]) for k in layers],
        best_iou_hist=[_histogram(ious[:, k], bins) for k in layers],
        best_score_hist=[_histogram(scores[:, k], bins) for k in layers])


def overlay_boxes(pred_boxes: Tensor, gt_boxes: Tensor, threshold: float) -> Tensor:
    """The (K, 4) boxes of ``pred_boxes`` (N, 4) (one layer) whose IoU with at least one of
    ``gt_boxes`` (M, 4) is above ``threshold``: the queries gathered around the objects."""
    from mmdet.structures.bbox import bbox_overlaps
    if gt_boxes.shape[0] == 0:
        return pred_boxes.new_zeros(0, 4)
    ious = bbox_overlaps(pred_boxes.float(), gt_boxes.float())
    return pred_boxes[(ious > threshold).any(dim=1)]


def _gt(sample):
    """(M, 4) float GT boxes (original pixels) and (M,) labels of a data sample."""
    bboxes = sample.gt_instances.bboxes
    bboxes = getattr(bboxes, 'tensor', bboxes)
    return bboxes.float().reshape(-1, 4), sample.gt_instances.labels.long()


def image_affinity(cls_logits: Tensor, bbox_preds: Tensor, sample, use_sigmoid: bool = True,
                   thresholds: Sequence[float] = THRESHOLDS):
    """One image: ``(records, pred_boxes, gt_boxes)``.

    Args:
        cls_logits: (L, N, C) logits of every decoder layer for this image.
        bbox_preds: (L, N, 4) normalised ``(cx, cy, w, h)`` boxes relative to ``img_shape``.
        sample: its ``DetDataSample`` (``img_shape``, ``scale_factor``, ``img_path``, GT in
            original pixels).

    Returns:
        one JSON record per GT object (see the module docstring), the (L, N, 4) query boxes
        and the (M, 4) GT boxes, both in original pixels.
    """
    pred = boxes_to_original(bbox_preds, sample.img_shape,
                             sample.metainfo.get('scale_factor', (1.0, 1.0)))
    gt_boxes, labels = _gt(sample)
    stats = object_affinity(pred, gt_boxes, gt_class_probs(cls_logits, labels, use_sigmoid),
                            thresholds)
    records = [dict(image=str(sample.metainfo.get('img_path', '')), gt_index=j,
                    label=int(labels[j]), bbox=[float(x) for x in gt_boxes[j]],
                    counts=stats['counts'][:, j].tolist(),
                    best_iou=stats['best_iou'][:, j].tolist(),
                    best_score=stats['best_score'][:, j].tolist(),
                    best_query=stats['best_query'][:, j].tolist())
               for j in range(gt_boxes.shape[0])]
    return records, pred, gt_boxes


def batch_affinity(model, batch: Dict, pipeline, thresholds: Sequence[float] = THRESHOLDS) -> List:
    """Run ``model`` (a DETR-family detector or a distiller, in eval mode) on one
    :func:`~mmdet_ksdetr.analysis.common.val_batches` batch made by ``pipeline`` and return
    :func:`image_affinity` of each image (GT boxes brought to original pixels first). The
    per-layer boxes and logits are those of the main (matching) queries, from
    :func:`~mmdet_ksdetr.distill.core.capture.get_detr_internals` in eval mode (DAC-DETR's
    C-stream only runs in training)."""
    from mmdet_ksdetr.distill.core.capture import get_detr_internals
    from mmdet_ksdetr.utils.errors import InputError
    from mmdet_ksdetr.analysis.common import gt_boxes_in_original_frame, unwrap_detector
    detector = unwrap_detector(model)
    with torch.no_grad():
        data = model.data_preprocessor(batch, False)
        internals = get_detr_internals(detector, data['inputs'], data['data_samples'])
    out = []
    for b, sample in enumerate(data['data_samples']):
        sample = sample.cpu()
        sample.gt_instances.bboxes = gt_boxes_in_original_frame(sample, pipeline)
        try:
            out.append(image_affinity(internals.cls_logits[:, b].cpu(),
                                      internals.bbox_preds[:, b].cpu(), sample,
                                      internals.use_sigmoid, thresholds))
        except ValueError as e:
            raise InputError(str(e)) from e
    return out
