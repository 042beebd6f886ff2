"""GT foreground token mask of KS-DETR: exact hand-made example and the vectorised
rasteriser against the release's slicing definition."""
import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData

from mmdet_ksdetr.models.ks_detr.ks_gt_mask import (gt_boxes_of, gt_foreground_token_mask,
                                                    rasterize_boxes)


def _sample(img_shape, boxes, batch_input_shape=(8, 8)):
    s = DetDataSample(metainfo=dict(img_shape=img_shape, batch_input_shape=batch_input_shape))
    s.gt_instances = InstanceData(bboxes=torch.tensor(boxes, dtype=torch.float32).view(-1, 4),
                                  labels=torch.zeros(len(boxes), dtype=torch.long))
    return s


def test_mask_hand_made_example():
    """Two images padded to 8x8 (the second is 8 high, 4 wide), one box each, two levels."""
    samples = [
        _sample((8, 8), [[1.7, 2.2, 5.9, 6.0]]),  # -> int (1, 2, 5, 6): x in [1,5), y in [2,6)
        _sample((8, 4), [[0.5, 0.9, 2.99, 2.0]]),  # -> int (0, 0, 2, 2)
    ]
    spatial_shapes = torch.tensor([[4, 4], [2, 2]])
    # mmdet's padding mask (nearest resize of the image mask): image 1 pads columns >= 4 of
    # the input, i.e. columns 2, 3 of level 0 and column 1 of level 1.
    padding = torch.zeros(2, 20, dtype=torch.bool)
    for r in range(4):
        padding[1, r * 4 + 2] = padding[1, r * 4 + 3] = True
    padding[1, 16 + 1] = padding[1, 16 + 3] = True
    # a foreground token of image 0 marked as padding, to check the AND with valid tokens
    padding[0, 10] = True

    mask = gt_foreground_token_mask(samples, spatial_shapes, padding)

    # bilinear, align_corners=True, 8 -> 4 samples input rows/cols 0, 2.33, 4.67, 7:
    # image 0 rows {1, 2} x cols {1, 2} -> tokens 5, 6, 9, 10 (10 is padding);
    # image 1 row 0 x col 0 -> token 0. 8 -> 2 samples 0 and 7: only image 1 token (0, 0).
    expected = torch.zeros(2, 20, dtype=torch.bool)
    expected[0, [5, 6, 9]] = True
    expected[1, [0, 16]] = True
    assert mask.dtype == torch.bool
    assert torch.equal(mask, expected)

    # without a padding mask (all tokens valid) token 10 of image 0 is foreground
    no_pad = gt_foreground_token_mask(samples, [(4, 4), (2, 2)], None)
    expected[0, 10] = True
    expected[1, [0, 16]] = True
    assert torch.equal(no_pad, expected)


def _reference_canvas(boxes, shape):
    """The release's definition: fg[y1:y2, x1:x2] = 1 with int64-truncated boxes."""
    out = torch.zeros(len(boxes), *shape, dtype=torch.bool)
    for i, b in enumerate(boxes):
        for x1, y1, x2, y2 in b.long().tolist():
            out[i, y1:y2, x1:x2] = True
    return out


def test_rasterize_matches_slicing_definition():
    g = torch.Generator().manual_seed(0)
    boxes = []
    for n in (0, 1, 7):
        xy = torch.rand(n, 2, generator=g) * torch.tensor([30., 20.])
        wh = torch.rand(n, 2, generator=g) * 15
        boxes.append(torch.cat([xy, (xy + wh).clamp(max=torch.tensor([33., 25.]))], 1))
    got = rasterize_boxes(boxes, (25, 33))
    assert got.shape == (3, 25, 33)
    assert torch.equal(got, _reference_canvas(boxes, (25, 33)))
    assert not got[0].any()


def test_no_boxes_gives_empty_mask():
    samples = [_sample((8, 8), []), _sample((8, 8), [])]
    mask = gt_foreground_token_mask(samples, [(4, 4)])
    assert mask.shape == (2, 16) and not mask.any()


def test_missing_gt_boxes_says_what_to_fix():
    s = DetDataSample(metainfo=dict(img_shape=(8, 8), batch_input_shape=(8, 8)))
    with pytest.raises(ValueError, match='LoadAnnotations'):
        gt_boxes_of([s])
