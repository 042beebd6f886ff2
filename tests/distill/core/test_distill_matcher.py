"""DistillHungarianMatcher: registered by name in mmrazor's TASK_UTILS; matching results."""
import torch
from mmrazor.registry import TASK_UTILS

from mmdet_ksdetr.distill.core.distill_matcher import DistillHungarianMatcher


def test_registered_name():
    assert TASK_UTILS.module_dict['DistillHungarianMatcher'] is DistillHungarianMatcher


def test_identity_matching_of_identical_predictions():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 3)
    boxes = torch.rand(2, 5, 4) * 0.3 + 0.3
    factors = torch.tensor([[100., 80., 100., 80.]] * 2)
    s_idx, t_idx = DistillHungarianMatcher().match(logits, boxes, logits.sigmoid(), boxes,
                                                   factors)
    perm = torch.argsort(s_idx, -1)
    assert torch.equal(t_idx.gather(1, perm), s_idx.gather(1, perm))
