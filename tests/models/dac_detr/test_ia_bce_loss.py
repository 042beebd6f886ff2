"""IA-BCE loss and DAC-DETR rank weights against direct formulas."""
import math

import pytest
import torch
from mmdet.registry import MODELS

from mmdet_ksdetr.models.dac_detr.ia_bce_loss import IABCELoss, rank_weight_table, rank_weights


def _direct_ia_bce(logits, positives, alpha=0.25, gamma=2.0):
    """Entry by entry. positives: {(row, cls): (iou, w)}."""
    total = 0.0
    for i in range(logits.shape[0]):
        for c in range(logits.shape[1]):
            p = 1.0 / (1.0 + math.exp(-float(logits[i, c])))
            if (i, c) in positives:
                iou, w = positives[(i, c)]
                t = max(p**alpha * iou**(1 - alpha), 0.01) * w
                total += -t * math.log(p) - (1 - t) * math.log(1 - p)
            else:
                total += -(p**gamma) * math.log(1 - p)
    return total


def test_registered_and_sigmoid():
    loss = MODELS.build(dict(type='mmdet.IABCELoss', loss_weight=2.0))  # scope-proof
    assert isinstance(loss, IABCELoss) and loss.use_sigmoid and loss.loss_weight == 2.0


def test_per_row_targets_match_direct_formula():
    torch.manual_seed(0)
    logits = torch.randn(6, 4) * 2
    labels = torch.tensor([4, 1, 4, 3, 0, 4])  # 4 = background
    ious = torch.tensor([0.0, 0.8, 0.0, 0.005, 0.4, 0.0])  # row 3: target clamped to 0.01
    loss = IABCELoss()(logits, (labels, ious), avg_factor=3.0)
    expected = _direct_ia_bce(logits, {(1, 1): (0.8, 1.0), (3, 3): (0.005, 1.0),
                                       (4, 0): (0.4, 1.0)}) / 3.0
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    # rank weights multiply the target; loss_weight multiplies the whole
    rw = torch.tensor([1.0, 0.5, 1.0, 0.25, 0.1, 1.0])
    loss_w = IABCELoss(loss_weight=2.0)(logits, (labels, ious, rw), avg_factor=3.0)
    expected_w = 2.0 * _direct_ia_bce(logits, {(1, 1): (0.8, 0.5), (3, 3): (0.005, 0.25),
                                               (4, 0): (0.4, 0.1)}) / 3.0
    assert loss_w.item() == pytest.approx(expected_w, rel=1e-5)


def test_pairs_allow_two_positive_classes_in_a_row_and_gradients():
    torch.manual_seed(1)
    logits = (torch.randn(3, 3) * 2).requires_grad_()
    loss = IABCELoss().loss_pairs(logits, torch.tensor([0, 0, 2]), torch.tensor([1, 2, 0]),
                                  torch.tensor([0.7, 0.3, 0.9]),
                                  rank_weights=torch.tensor([1.0, 0.5, 1.0]), avg_factor=2.0)
    expected = _direct_ia_bce(logits.detach(), {(0, 1): (0.7, 1.0), (0, 2): (0.3, 0.5),
                                                (2, 0): (0.9, 1.0)}) / 2.0
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    # the negative term's p^gamma is not detached: d/dz [-p^2 log(1-p)] at a negative entry
    z = float(logits.detach()[1, 0])
    p = 1 / (1 + math.exp(-z))
    grad = (2 * p * (-math.log(1 - p)) + p**2 / (1 - p)) * p * (1 - p) / 2.0
    assert logits.grad[1, 0].item() == pytest.approx(grad, rel=1e-4)


def test_all_negative_and_errors():
    logits = torch.randn(4, 2)
    loss = IABCELoss()(logits, (torch.full((4, ), 2), torch.zeros(4)), avg_factor=1.0)
    assert loss.item() == pytest.approx(_direct_ia_bce(logits, {}), rel=1e-5)
    with pytest.raises(ValueError, match='target=\\(labels, ious\\)'):
        IABCELoss()(logits, torch.zeros(4, 2))
    with pytest.raises(ValueError, match='alpha'):
        IABCELoss(alpha=2.0)


def test_rank_weights_against_brute_force():
    torch.manual_seed(0)
    scores = torch.rand(40)
    groups = torch.randint(0, 7, (40, )) * 3 - 5  # arbitrary, unsorted ids
    w = rank_weights(scores, groups, tau=1.5)
    for i in range(40):
        same = (groups == groups[i])
        rank = int((scores[same] > scores[i]).sum())
        assert w[i].item() == pytest.approx(math.exp(-rank / 1.5), rel=1e-6)
    assert torch.allclose(rank_weight_table(6), torch.tensor([1, .5134, .2636, .1353, .0695,
                                                              .0357]), atol=1e-4)
    assert rank_weights(torch.zeros(0), torch.zeros(0, dtype=torch.long)).numel() == 0
    with pytest.raises(ValueError, match='tau'):
        rank_weights(scores, groups, tau=0)
