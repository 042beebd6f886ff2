"""GT foreground token mask of KS-DETR (vectorised).

KS-DETR's teacher streams see the encoder tokens that lie on a ground-truth box through the
sMLP. Which tokens those are is decided exactly as in the KS-DETR release:

1. boxes in input pixels (after augmentation, before padding: mmdet's
   ``gt_instances.bboxes``) are cast to int by truncation;
2. they are painted with 1 on a zero canvas of the padded batch shape
   (``batch_input_shape``), ``canvas[y1:y2, x1:x2] = 1``;
3. the canvas is resized to every feature level with bilinear interpolation,
   ``align_corners=True``, and every value above 0 counts as foreground;
4. the levels are flattened row-major and concatenated in level order, which is the token
   order of mmdet's (batch-first) DETR encoders;
5. a token is foreground only if it is also a valid (non-padding) token.

No canvas is built: bilinear resizing is separable with non-negative weights, so a token
``(j, i)`` of a level is foreground iff some box covers one of the canvas rows that weigh on
row ``j`` *and* one of the canvas columns that weigh on column ``i``. Those rows (columns) are
found by resizing each box's 1-D row (column) indicator with the same interpolation
(``linear``, ``align_corners=True``, hence the same weights as the 2-D resize), and the union of
the boxes is one small ``(h, n) @ (n, w)`` product per level: O(n (H + W) + h w) work instead of
O(H W) for the canvas.
"""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ['rasterize_boxes', 'level_masks', 'gt_foreground_token_mask', 'gt_boxes_of']


def gt_boxes_of(batch_data_samples) -> List[Tensor]:
    """The ``(n_i, 4)`` xyxy GT boxes (input pixels) of each data sample.

    Raises a ``ValueError`` that says what to fix when a sample carries no GT boxes (e.g. the
    training pipeline lacks ``LoadAnnotations(with_bbox=True)``)."""
    boxes = []
    for i, sample in enumerate(batch_data_samples):
        gt = getattr(sample, 'gt_instances', None)
        if gt is None or 'bboxes' not in gt:
            raise ValueError(
                f'KS-DETR needs the GT boxes of every training image (they build the teacher '
                f'mask), but data sample {i} has no gt_instances.bboxes. Keep '
                f"dict(type='LoadAnnotations', with_bbox=True) before dict(type='PackDetInputs') "
                f'in train_dataloader.dataset.pipeline.')
        b = gt.bboxes
        boxes.append(b.tensor if hasattr(b, 'tensor') else b)
    return boxes


def _packed_boxes(boxes: Sequence[Tensor], device) -> Tensor:
    """``(B, max_n, 4)`` long xyxy boxes, truncated to int and clamped at 0; empty
    ``(0, 0, 0, 0)`` boxes pad the images with fewer boxes."""
    max_n = max([len(b) for b in boxes], default=0)
    packed = torch.zeros(len(boxes), max_n, 4, dtype=torch.long, device=device)
    for i, b in enumerate(boxes):
        if len(b):
            packed[i, :len(b)] = b.detach().to(device).long()  # truncation, like .long()
    return packed.clamp(min=0)


def _spans(lo: Tensor, hi: Tensor, size: int) -> Tensor:
    """``(B, n, size)`` bool: ``lo <= k < hi`` for ``k in range(size)``."""
    k = torch.arange(size, device=lo.device)
    return (k >= lo[..., None]) & (k < hi[..., None])


def _canvas_inputs(boxes: Sequence[Tensor], shape, device):
    """``(H, W, B, device, packed boxes (B, max_n, 4))`` for a canvas of ``shape``; the device
    defaults to that of the boxes."""
    H, W = int(shape[0]), int(shape[1])
    B = len(boxes)
    if device is None:
        device = boxes[0].device if B else 'cpu'
    return H, W, B, device, _packed_boxes(boxes, device)


def rasterize_boxes(boxes: Sequence[Tensor], shape: Tuple[int, int],
                    device: Optional[Union[str, torch.device]] = None) -> Tensor:
    """Paint the boxes of each image with 1 on a zero canvas.

    Args:
        boxes: per image an ``(n_i, 4)`` tensor of ``(x1, y1, x2, y2)`` pixel boxes; ``n_i`` may
            be 0. Coordinates are truncated to int (as ``int64`` casting does) and clamped at 0.
        shape: ``(H, W)`` of the canvas (the padded batch shape).
        device: device of the result (defaults to that of the boxes).

    Returns:
        Tensor: ``(B, H, W)`` bool, True inside at least one box (``canvas[y1:y2, x1:x2]``).
    """
    H, W, B, device, packed = _canvas_inputs(boxes, shape, device)
    if packed.shape[1] == 0:
        return torch.zeros(B, H, W, dtype=torch.bool, device=device)
    x1, y1, x2, y2 = packed.unbind(-1)  # each (B, max_n)
    rows, cols = _spans(y1, y2, H), _spans(x1, x2, W)
    return torch.bmm(rows.transpose(1, 2).float(), cols.float()) > 0


def _level_support(spans: Tensor, size: int) -> Tensor:
    """``(B, n, size)`` bool: output positions of a 1-D ``align_corners`` linear resize of each
    box's indicator ``spans (B, n, S)`` that receive a non-zero weight from the box."""
    if spans.shape[-1] == size:
        return spans
    return F.interpolate(spans.float(), size=size, mode='linear', align_corners=True) > 0


def level_masks(boxes: Sequence[Tensor], shape: Tuple[int, int],
                level_shapes: Sequence[Tuple[int, int]],
                device: Optional[Union[str, torch.device]] = None) -> List[Tensor]:
    """Per level the ``(B, h, w)`` bool mask ``interpolate(canvas, (h, w), 'bilinear',
    align_corners=True) > 0`` of the :func:`rasterize_boxes` canvas of ``shape``, without
    building the canvas (see the module doc)."""
    H, W, B, device, packed = _canvas_inputs(boxes, shape, device)
    if packed.shape[1] == 0:
        return [torch.zeros(B, int(h), int(w), dtype=torch.bool, device=device)
                for h, w in level_shapes]
    x1, y1, x2, y2 = packed.unbind(-1)
    rows, cols = _spans(y1, y2, H), _spans(x1, x2, W)  # (B, n, H), (B, n, W)
    out = []
    for h, w in level_shapes:
        r = _level_support(rows, int(h)).transpose(1, 2).float()  # (B, h, n)
        c = _level_support(cols, int(w)).float()  # (B, n, w)
        out.append(torch.bmm(r, c) > 0)
    return out


def gt_foreground_token_mask(batch_data_samples,
                             spatial_shapes: Union[Tensor, Sequence[Sequence[int]]],
                             padding_mask: Optional[Tensor] = None,
                             boxes: Optional[Sequence[Tensor]] = None) -> Tensor:
    """Foreground mask of the encoder tokens, in the token order of mmdet's DETR encoders.

    Args:
        batch_data_samples: the batch's data samples; ``batch_input_shape`` (padded ``(H, W)``)
            is read from the first and, unless ``boxes`` is given, the GT boxes from each.
        spatial_shapes: ``(num_levels, 2)`` tensor or list of the ``(h, w)`` of each level.
        padding_mask: ``(B, N)`` bool, True at padding tokens (mmdet's ``feat_mask``), or None
            when no image is padded.
        boxes: optional per-image ``(n_i, 4)`` boxes overriding the data samples' GT boxes.

    Returns:
        Tensor: ``(B, N)`` bool with ``N = sum(h * w)``, True for valid tokens on a GT box.
    """
    if boxes is None:
        boxes = gt_boxes_of(batch_data_samples)
    device = padding_mask.device if padding_mask is not None else (
        boxes[0].device if len(boxes) else 'cpu')
    shapes = spatial_shapes.tolist() if torch.is_tensor(spatial_shapes) else spatial_shapes
    levels = [m.flatten(1) for m in level_masks(
        boxes, batch_data_samples[0].batch_input_shape, shapes, device)]
    mask = torch.cat(levels, 1)
    if padding_mask is not None:
        if padding_mask.shape != mask.shape:
            raise ValueError(f'padding mask of shape {tuple(padding_mask.shape)} does not match '
                             f'the {tuple(mask.shape)} tokens of spatial_shapes')
        mask = mask & ~padding_mask.bool()
    return mask
