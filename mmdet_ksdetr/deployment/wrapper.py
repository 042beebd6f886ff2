"""The exportable inference path of a DETR-family detector: image tensor in, top-k boxes,
scores and labels out, as ``bbox_head.predict_by_feat`` computes them (without NMS)."""
from typing import Tuple

import torch
from mmdet.models.dense_heads import DETRHead
from mmdet.models.detectors import DDQDETR, DETR, DeformableDETR
from mmdet.structures import DetDataSample
from torch import Tensor, nn

from mmdet_ksdetr.utils.errors import InputError


class UnsupportedDetectorError(InputError):
    """A detector (or head) whose inference path this exporter does not cover."""


def check_exportable(detector: nn.Module) -> None:
    """Raise :class:`UnsupportedDetectorError` in one line unless ``detector`` is a DETR,
    Deformable DETR (two-stage / box refinement), Conditional, DAB, DN or DINO detector
    (or a subclass whose inference is that of its base, as KS-DETR / DAC-DETR ones) whose head
    post-processes with the stock top-k (no NMS)."""
    name = type(detector).__name__
    if not isinstance(detector, (DETR, DeformableDETR)):
        raise UnsupportedDetectorError(
            f'{name} is not a DETR-family detector; export_onnx.py exports DETR, Deformable '
            f'DETR, Conditional DETR, DAB-DETR, DN-DETR and DINO detectors')
    if isinstance(detector, DDQDETR):
        raise UnsupportedDetectorError(
            f'{name} post-processes with its own predict (dense queries + NMS), which '
            f'export_onnx.py does not export')
    head = getattr(detector, 'bbox_head', None)
    if not isinstance(head, DETRHead):
        raise UnsupportedDetectorError(
            f'{name} has head {type(head).__name__}, not a DETRHead: not exportable')
    if head.test_cfg and head.test_cfg.get('nms'):
        raise UnsupportedDetectorError(
            f'{type(head).__name__} has test_cfg.nms: NMS post-processing is not exported '
            f'(no custom ONNX operators); export with --cfg-options model.test_cfg.nms=None')


def topk_detections(cls_score: Tensor, bbox_pred: Tensor, img_hw: Tensor, max_per_img: int,
                    use_sigmoid: bool) -> Tuple[Tensor, Tensor, Tensor]:
    """DETR top-k post-processing of one image, written with out-of-place ops only.

    Args:
        cls_score (Tensor): last decoder layer's logits, (num_queries, num_classes) for a
            sigmoid head, (num_queries, num_classes + 1) for a softmax one (last = no object).
        bbox_pred (Tensor): normalised (cx, cy, w, h) boxes, (num_queries, 4).
        img_hw (Tensor): (2, ) height and width of the network input.
        max_per_img (int): k.
        use_sigmoid (bool): sigmoid + top-k over all query x class scores, else softmax, best
            class per query, top-k over queries.

    Returns:
        tuple: boxes (k, 4) as (x1, y1, x2, y2) in input pixels, scores (k, ), labels (k, )
        int64, best first.
    """
    if use_sigmoid:
        num_classes = cls_score.shape[-1]
        scores, index = cls_score.sigmoid().reshape(-1).topk(max_per_img)
        labels = index % num_classes
        query = torch.div(index, num_classes, rounding_mode='floor')
    else:
        best, labels = cls_score.softmax(-1)[..., :-1].max(-1)
        scores, query = best.topk(max_per_img)
        labels = labels[query]
    cx, cy, w, h = bbox_pred[query].unbind(-1)
    boxes = torch.stack((cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h), -1)
    size = img_hw.flip(0).repeat(2).to(boxes.dtype)  # (w, h, w, h)
    boxes = torch.minimum((boxes * size).clamp(min=0), size)
    return boxes, scores, labels


class DetrExportWrapper(nn.Module):
    """A DETR-family detector's ``predict`` as a plain tensor function for ``torch.onnx``.

    The detector runs its own stages (``extract_feat``, ``forward_transformer``,
    ``bbox_head.predict``) on one unpadded image, as in ``predict`` with a batch of one
    (no padding mask); the last decoder layer's head outputs are read with a forward hook on
    the head and post-processed by :func:`topk_detections`, the top-k of
    ``predict_by_feat`` without its in-place box scaling. Boxes are in input pixels:
    rescaling to the original image happens outside.

    Args:
        detector (nn.Module): a detector accepted by :func:`check_exportable`, in eval mode.

    Shapes: ``image`` (1, 3, H, W) float32, normalised as the config's data preprocessor
    does; outputs ``boxes`` (k, 4), ``scores`` (k, ), ``labels`` (k, ) int64 with
    ``k = test_cfg.max_per_img``.
    """

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        check_exportable(detector)
        self.detector = detector
        head = detector.bbox_head
        self.use_sigmoid = bool(head.loss_cls.use_sigmoid)
        self.max_per_img = int((head.test_cfg or {}).get('max_per_img', detector.num_queries))

    def forward(self, image: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        det = self.detector
        h, w = image.shape[-2:]
        sample = DetDataSample(metainfo=dict(img_shape=(h, w), batch_input_shape=(h, w),
                                             ori_shape=(h, w), scale_factor=(1.0, 1.0)))
        outs = []
        handle = det.bbox_head.register_forward_hook(lambda m, args, out: outs.append(out))
        try:
            head_inputs = det.forward_transformer(det.extract_feat(image), [sample])
            det.bbox_head.predict(**head_inputs, batch_data_samples=[sample], rescale=False)
        finally:
            handle.remove()
        all_cls_scores, all_bbox_preds = outs[-1][:2]  # (layers, 1, Q, C), (layers, 1, Q, 4)
        img_hw = torch._shape_as_tensor(image)[-2:]
        return topk_detections(all_cls_scores[-1][0], all_bbox_preds[-1][0], img_hw,
                               self.max_per_img, self.use_sigmoid)
