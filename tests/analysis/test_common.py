"""``mmdet_ksdetr.analysis.common``: which frame a validation sample's GT boxes are in, from the
order of ``LoadAnnotations`` and ``Resize`` in the pipeline, and both conversions."""
import pytest
import torch
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import HorizontalBoxes
from mmengine.structures import InstanceData

from mmdet_ksdetr.analysis.common import (gt_boxes_in_input_frame, gt_boxes_in_original_frame,
                                          gt_loaded_after_resize, val_pipeline)
from mmdet_ksdetr.utils.errors import InputError

AFTER = [dict(type='LoadImageFromFile'), dict(type='Resize'), dict(type='LoadAnnotations')]
BEFORE = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'), dict(type='Resize')]


def _sample(boxes):
    s = DetDataSample(metainfo=dict(scale_factor=(0.5, 2.0)))
    s.gt_instances = InstanceData(bboxes=HorizontalBoxes(torch.tensor(boxes)))
    return s


def test_frame_follows_the_pipeline_order():
    assert gt_loaded_after_resize(AFTER) and not gt_loaded_after_resize(BEFORE)
    assert not gt_loaded_after_resize(AFTER[:1] + AFTER[2:])  # no Resize: one frame
    with pytest.raises(InputError, match='LoadAnnotations'):
        gt_loaded_after_resize(AFTER[:2])


def test_boxes_in_each_frame():
    s = _sample([[10., 10., 20., 30.]])
    # loaded after Resize: original pixels
    assert gt_boxes_in_original_frame(s, AFTER).tolist() == [[10., 10., 20., 30.]]
    assert gt_boxes_in_input_frame(s, AFTER).tolist() == [[5., 20., 10., 60.]]
    # loaded before Resize: input pixels
    assert gt_boxes_in_input_frame(s, BEFORE).tolist() == [[10., 10., 20., 30.]]
    assert gt_boxes_in_original_frame(s, BEFORE).tolist() == [[20., 5., 40., 15.]]


def test_val_pipeline_is_the_loader_the_batches_come_from():
    from mmengine.config import Config
    cfg = Config(dict(test_dataloader=dict(dataset=dict(pipeline=AFTER))))
    assert val_pipeline(cfg) == AFTER
    cfg.val_dataloader = dict(dataset=dict(pipeline=BEFORE))
    assert val_pipeline(cfg) == BEFORE
    with pytest.raises(InputError, match='no val_dataloader'):
        val_pipeline(Config(dict()))
