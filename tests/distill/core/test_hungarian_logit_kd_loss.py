"""DistillHungarianMatcher against brute force, and HungarianLogitKDLoss against the formula."""
import itertools

import pytest
import torch
import torch.nn.functional as F

from mmdet_ksdetr.distill.core.distill_matcher import DistillHungarianMatcher
from mmdet_ksdetr.distill.core.hungarian_logit_kd_loss import HungarianLogitKDLoss
from mmdet_ksdetr.utils import TrainingDivergedError


def _random_case(ns, nt, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    s_logits = torch.randn(ns, c, generator=g) * 2
    t_probs = torch.rand(nt, c, generator=g)
    s_boxes = torch.rand(ns, 4, generator=g) * 0.5 + 0.25
    t_boxes = torch.rand(nt, 4, generator=g) * 0.5 + 0.25
    factor = torch.tensor([96., 128., 96., 128.])
    return s_logits, s_boxes, t_probs, t_boxes, factor


def _giou(a, b):
    """Plain-Python GIoU of two xyxy boxes."""
    ix = max(0., min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0., min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])  # noqa: E731
    union = area(a) + area(b) - inter
    hull = (max(a[2], b[2]) - min(a[0], b[0])) * (max(a[3], b[3]) - min(a[1], b[1]))
    return inter / union - (hull - union) / hull


def _xyxy(box, factor):
    cx, cy, w, h = box.tolist()
    fw, fh = factor[0].item(), factor[1].item()
    return [(cx - w / 2) * fw, (cy - h / 2) * fh, (cx + w / 2) * fw, (cy + h / 2) * fh]


def _pair_cost(i, j, case, w=(1., 5., 2.)):
    """DETRDistill's C_ij written out for one pair, independently of the vectorised code."""
    s_logits, s_boxes, t_probs, t_boxes, factor = case
    bce = F.binary_cross_entropy_with_logits(s_logits[i], t_probs[j], reduction='sum').item()
    l1 = (s_boxes[i] - t_boxes[j]).abs().sum().item()
    giou = _giou(_xyxy(s_boxes[i], factor), _xyxy(t_boxes[j], factor))
    return w[0] * bce + w[1] * l1 - w[2] * giou


@pytest.mark.parametrize('ns,nt', [(5, 5), (4, 6), (6, 4)])
def test_matcher_equals_brute_force(ns, nt):
    case = _random_case(ns, nt, seed=ns * 10 + nt)
    s_logits, s_boxes, t_probs, t_boxes, factor = case
    matcher = DistillHungarianMatcher(1., 5., 2.)
    cost = matcher.cost(s_logits, s_boxes, t_probs, t_boxes, factor)
    for i in range(ns):
        for j in range(nt):
            assert cost[i, j].item() == pytest.approx(_pair_cost(i, j, case), rel=1e-4, abs=1e-4)
    s_idx, t_idx = matcher.match(s_logits, s_boxes, t_probs, t_boxes, factor)
    m = min(ns, nt)
    assert s_idx.shape == t_idx.shape == (m, )
    got = sum(_pair_cost(i, j, case) for i, j in zip(s_idx.tolist(), t_idx.tolist()))
    best = min(
        sum(_pair_cost(i, j, case) for i, j in zip(rows, cols))
        for rows in itertools.combinations(range(ns), m)
        for cols in itertools.permutations(range(nt), m))
    assert got == pytest.approx(best, rel=1e-5)
    assert len(set(s_idx.tolist())) == m and len(set(t_idx.tolist())) == m


def test_matcher_batched_over_layers_and_images():
    cases = [_random_case(4, 5, seed=s) for s in range(6)]
    stack = [torch.stack([c[k] for c in cases]).view(3, 2, *cases[0][k].shape) for k in range(5)]
    matcher = DistillHungarianMatcher()
    s_idx, t_idx = matcher.match(*stack)
    assert s_idx.shape == (3, 2, 4)
    for n, case in enumerate(cases):
        s1, t1 = matcher.match(*case)
        assert torch.equal(s_idx.view(6, 4)[n], s1) and torch.equal(t_idx.view(6, 4)[n], t1)


def test_matcher_rejects_bad_input():
    with pytest.raises(ValueError, match='cls_cost'):
        DistillHungarianMatcher(cls_cost=-1)
    with pytest.raises(ValueError, match='class counts'):
        DistillHungarianMatcher().match(torch.zeros(2, 3), torch.rand(2, 4), torch.zeros(2, 4),
                                        torch.rand(2, 4), torch.ones(4))
    for bad in (float('nan'), float('inf')):
        logits = torch.zeros(2, 3)
        logits[1, 2] = bad
        with pytest.raises(TrainingDivergedError, match='student-to-teacher distillation '
                           'matching cost has NaN/inf entries.*clip_grad'):
            DistillHungarianMatcher().match(logits, torch.rand(2, 4), torch.rand(2, 3),
                                            torch.rand(2, 4), torch.ones(4))


def test_logit_kd_loss_formula_and_unmatched_background():
    ns, nt, c = 5, 3, 4  # more student queries than teacher predictions
    g = torch.Generator().manual_seed(1)
    s_logits = torch.randn(1, ns, c, generator=g, requires_grad=True)
    s_boxes = (torch.rand(1, ns, 4, generator=g) * 0.4 + 0.3).requires_grad_()
    t_probs = torch.rand(1, nt, c, generator=g)
    t_boxes = torch.rand(1, nt, 4, generator=g) * 0.4 + 0.3
    factors = torch.tensor([[100., 80., 100., 80.]])
    matcher = DistillHungarianMatcher()
    s_idx, t_idx = matcher.match(s_logits.detach(), s_boxes.detach(), t_probs, t_boxes, factors)
    loss = HungarianLogitKDLoss(loss_cls_weight=1., loss_bbox_weight=5., loss_iou_weight=2.)
    out = loss(s_logits, s_boxes, t_probs, t_boxes, s_idx, t_idx, factors)
    # expected, written per query
    target = torch.zeros(ns, c)
    for i, j in zip(s_idx[0].tolist(), t_idx[0].tolist()):
        target[i] = t_probs[0, j]
    unmatched = set(range(ns)) - set(s_idx[0].tolist())
    assert len(unmatched) == ns - nt and all(target[i].sum() == 0 for i in unmatched)
    exp_cls = F.binary_cross_entropy_with_logits(s_logits[0], target, reduction='sum') / ns
    pairs = list(zip(s_idx[0].tolist(), t_idx[0].tolist()))
    exp_l1 = sum((s_boxes[0, i] - t_boxes[0, j]).abs().sum() for i, j in pairs) / len(pairs)
    exp_giou = sum(1 - _giou(_xyxy(s_boxes[0, i].detach(), factors[0]),
                             _xyxy(t_boxes[0, j], factors[0])) for i, j in pairs) / len(pairs)
    assert out['loss_cls_kd'].item() == pytest.approx(exp_cls.item(), rel=1e-5)
    assert out['loss_bbox_kd'].item() == pytest.approx(5 * exp_l1.item(), rel=1e-5)
    assert out['loss_iou_kd'].item() == pytest.approx(2 * exp_giou, rel=1e-4)
    sum(out.values()).backward()
    assert s_logits.grad.abs().sum() > 0 and s_boxes.grad.abs().sum() > 0
    # unmatched student boxes get no box gradient
    for i in unmatched:
        assert s_boxes.grad[0, i].abs().sum() == 0


def test_logit_kd_loss_is_zero_gradient_at_teacher():
    """A student equal to the teacher sits at the minimum of the class and box losses."""
    torch.manual_seed(0)
    t_logits = torch.randn(2, 4, 3)
    t_boxes = torch.rand(2, 4, 4) * 0.4 + 0.3
    s_logits = t_logits.clone().requires_grad_()
    s_boxes = t_boxes.clone().requires_grad_()
    factors = torch.tensor([[64., 64., 64., 64.], [96., 80., 96., 80.]])
    s_idx, t_idx = DistillHungarianMatcher().match(s_logits.detach(), s_boxes.detach(),
                                                   t_logits.sigmoid(), t_boxes, factors)
    assert torch.equal(s_idx, t_idx)  # identity match
    out = HungarianLogitKDLoss()(s_logits, s_boxes, t_logits.sigmoid(), t_boxes, s_idx, t_idx,
                                 factors)
    assert out['loss_bbox_kd'].item() == 0 and out['loss_iou_kd'].item() == pytest.approx(0)
    out['loss_cls_kd'].backward()
    assert s_logits.grad.abs().max() < 1e-6
