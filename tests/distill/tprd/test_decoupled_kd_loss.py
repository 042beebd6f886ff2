"""TPRD decoupled class distillation loss."""
import os.path as osp
import sys

import pytest
import torch
import torch.nn.functional as F
from mmrazor.models.losses import DKDLoss
from mmrazor.registry import MODELS
from toy_helpers import ROOT

from mmdet_ksdetr.distill.tprd.decoupled_kd_loss import (DecoupledKDLoss, decoupled_kd_loss,
                                                         kd_kl_loss)

sys.path.insert(0, osp.join(ROOT, 'tools', 'analysis_tools'))
from decoupled_kd_speed import all_pairs_decoupled_kd, main, make_inputs  # noqa: E402


def _plain_kl(zs, zt, T=1.0):
    return F.kl_div(F.log_softmax(zs / T, -1), F.softmax(zt / T, -1),
                    reduction='none').sum(-1) * T * T


def test_equals_plain_kl_without_positives():
    g = torch.Generator().manual_seed(0)
    zs, zt = torch.randn(2, 7, 5, generator=g), torch.randn(2, 7, 5, generator=g)
    labels = torch.full((2, 7), -1)
    torch.testing.assert_close(decoupled_kd_loss(zs, zt, labels), _plain_kl(zs, zt))
    torch.testing.assert_close(decoupled_kd_loss(zs, zt, None), _plain_kl(zs, zt))
    loss = DecoupledKDLoss(loss_weight=3.0)(zs, zt, labels, avg_factor=14)
    torch.testing.assert_close(loss, 3.0 * _plain_kl(zs, zt).sum() / 14)
    torch.testing.assert_close(kd_kl_loss(zs, zt, 10.0), _plain_kl(zs, zt, 10.0), rtol=1e-3,
                               atol=1e-4)


def test_positives_equal_dkd_and_mixed_pairs():
    """All-positive rows equal mmrazor's DKDLoss (TCKD + NCKD, tau 1); a mixed batch takes
    DKD for positives and plain KL for the rest."""
    g = torch.Generator().manual_seed(1)
    zs, zt = torch.randn(6, 4, generator=g) * 2, torch.randn(6, 4, generator=g) * 2
    labels = torch.tensor([0, 3, 1, 2, 2, 0])
    ours = decoupled_kd_loss(zs, zt, labels)
    ref = torch.stack([
        DKDLoss(tau=1.0, reduction='sum')(zs[i:i + 1], zt[i:i + 1], labels[i:i + 1])
        for i in range(6)
    ])
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-5)
    # DKD differs from plain KL (its NCKD is not scaled by 1 - p_t(c))
    assert not torch.allclose(ours, _plain_kl(zs, zt), atol=1e-4)
    # chain rule of KL: KL = TCKD + (1 - p_t(c)) NCKD; with beta = 0 only TCKD remains
    tckd = decoupled_kd_loss(zs, zt, labels, beta=0.0)
    nckd = decoupled_kd_loss(zs, zt, labels, alpha=0.0)
    p_t_c = F.softmax(zt, -1).gather(-1, labels[:, None]).squeeze(-1)
    torch.testing.assert_close(tckd + (1 - p_t_c) * nckd, _plain_kl(zs, zt), rtol=1e-4,
                               atol=1e-6)
    mixed = torch.tensor([0, -1, 1, -1, 2, -1])
    out = decoupled_kd_loss(zs, zt, mixed)
    torch.testing.assert_close(out[mixed < 0], _plain_kl(zs, zt)[mixed < 0])
    torch.testing.assert_close(out[mixed >= 0], ref[mixed >= 0], rtol=1e-4, atol=1e-5)
    # weights / avg_factor of the module
    w = torch.rand(6, generator=g)
    m = DecoupledKDLoss(loss_weight=2.0)
    torch.testing.assert_close(m(zs, zt, mixed, weight=w), 2.0 * (out * w).sum() / 6)


def test_identical_logits_give_zero_and_gradient_flows_to_student():
    zt = torch.randn(5, 6)
    zs = zt.clone().requires_grad_(True)
    labels = torch.tensor([0, -1, 5, 2, -1])
    loss = decoupled_kd_loss(zs, zt, labels)
    torch.testing.assert_close(loss, torch.zeros(5), atol=1e-6, rtol=0)
    zs2 = torch.randn(5, 6, requires_grad=True)
    decoupled_kd_loss(zs2, zt, labels).sum().backward()
    assert zs2.grad is not None and zs2.grad.abs().sum() > 0


@pytest.mark.parametrize('scale', [1.0, 100.0, 6e4])
def test_fp16_safe(scale):
    """fp16 inputs, including saturating logits (p_t(c) == 1 and 0 in any precision), give
    finite losses and gradients that match the float32 computation."""
    g = torch.Generator().manual_seed(2)
    zs = (torch.randn(8, 5, generator=g) * scale).clamp(-6e4, 6e4).half().requires_grad_(True)
    zt = (torch.randn(8, 5, generator=g) * scale).clamp(-6e4, 6e4).half()
    labels = torch.tensor([0, 1, 2, 3, 4, -1, -1, 0])
    loss = decoupled_kd_loss(zs, zt, labels)
    assert loss.dtype == torch.float32 and torch.isfinite(loss).all()
    loss.sum().backward()
    assert torch.isfinite(zs.grad).all()
    ref = decoupled_kd_loss(zs.detach().float(), zt.float(), labels)
    torch.testing.assert_close(loss, ref)


def test_registered_and_bad_input():
    # explicit scope: earlier tests may leave mmdet as the default scope
    loss = MODELS.build(dict(type='mmrazor.DecoupledKDLoss', loss_weight=4.0))
    assert isinstance(loss, DecoupledKDLoss) and loss.loss_weight == 4.0
    with pytest.raises(ValueError, match='same shape'):
        decoupled_kd_loss(torch.randn(3, 4), torch.randn(3, 5))
    with pytest.raises(ValueError, match='pos_labels must have shape'):
        decoupled_kd_loss(torch.randn(3, 4), torch.randn(3, 4), torch.zeros(4).long())
    with pytest.raises(ValueError, match='number of classes'):
        decoupled_kd_loss(torch.randn(3, 4), torch.randn(3, 4), torch.tensor([0, 4, -1]))
    with pytest.raises(ValueError, match='temperature'):
        DecoupledKDLoss(temperature=0)


def _ties():
    """Tied logits: equal rows, equal classes, target tied with others, all-equal rows."""
    zs = torch.tensor([[1., 1., 1., 1.], [2., 2., 0., 0.], [0., 3., 3., -1.], [5., 5., 5., 5.]])
    zt = torch.tensor([[1., 1., 1., 1.], [2., 0., 2., 0.], [3., 3., 0., 0.], [0., 0., 0., 0.]])
    return zs, zt


@pytest.mark.parametrize('case', ['none', 'all', 'mixed', 'ties', 'ties_all', 'batched_T'])
def test_positive_rows_only_equals_all_pairs_split(case):
    """Values and student gradients equal the straightforward all-pairs computation."""
    g = torch.Generator().manual_seed(3)
    T = 1.0
    if case.startswith('ties'):
        zs, zt = _ties()
        labels = torch.tensor([0, 1, 1, 3]) if case == 'ties_all' else torch.tensor(
            [0, -1, 2, -1])
    else:
        zs, zt = torch.randn(3, 5, 7, generator=g) * 4, torch.randn(3, 5, 7, generator=g) * 4
        labels = torch.randint(0, 7, (3, 5), generator=g)
        if case == 'none':
            labels[:] = -1
        elif case in ('mixed', 'batched_T'):
            labels[torch.rand(3, 5, generator=g) < 0.5] = -1
        T = 2.5 if case == 'batched_T' else 1.0
    grads = []
    for fn in (decoupled_kd_loss, all_pairs_decoupled_kd):
        x = zs.clone().requires_grad_(True)
        loss = fn(x, zt, labels, T, 0.7, 1.3)
        (loss * torch.linspace(0.5, 2, loss.numel()).view(loss.shape)).sum().backward()
        grads.append((loss.detach(), x.grad))
    (new, g_new), (ref, g_ref) = grads
    assert new.shape == labels.shape
    torch.testing.assert_close(new, ref)
    torch.testing.assert_close(g_new, g_ref)


def test_speed_tool_runs_and_checks_equality(capsys):
    zs, zt, labels = make_inputs(2, 2, 10, 5, 3)
    assert int((labels >= 0).sum()) == 2 * 2 * 3
    main(['--layers', '1', '--queries', '20', '--classes', '5', '--runs', '2', '--warmup', '0'])
    out = capsys.readouterr().out
    assert 'positive rows (mmdet_ksdetr)' in out and 'all pairs + torch.where' in out
    with pytest.raises(ValueError, match='pos-per-image'):
        make_inputs(1, 1, 4, 5, 9)
