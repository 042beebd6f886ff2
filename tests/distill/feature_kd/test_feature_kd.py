"""Feature baselines (FitNet, MGD via MMRazor; FGD) on DETR neck features."""

import pytest
import torch
from toy_helpers import build_toy, toy_inputs

from mmdet_ksdetr.distill.feature_kd.fgd_loss import FGDLoss

CFGS = {m: f'toy/feature_kd/{m}_deformable-detr_tiny-r18_1xb2-12e_toy.py'
        for m in ('fitnet', 'mgd', 'fgd')}


def _build(method, data_root, **algo):
    cfg, model = build_toy(CFGS[method], data_root, replace=True, teacher_ckpt=None, **algo)
    return model, toy_inputs(model, cfg, data_root)


@pytest.mark.parametrize('method', ['fitnet', 'mgd', 'fgd'])
def test_training_step(method, toy_data_root):
    algo, data = _build(method, toy_data_root)
    algo.train()
    losses = algo.loss(data['inputs'], data['data_samples'])
    keys = [k for k in losses if k.startswith(f'distill.loss_{method}_')]
    assert len(keys) == 4, losses.keys()
    assert all(torch.isfinite(losses[k]) and float(losses[k].detach()) > 0 for k in keys)
    sum(losses[k] for k in keys).backward()
    assert all(p.grad is None for p in algo.teacher.parameters())
    assert algo.student.neck.convs[0].conv.weight.grad.abs().sum() > 0
    assert algo.student.neck.extra_convs[0].conv.weight.grad.abs().sum() > 0


def test_fitnet_equals_mse_of_hint(toy_data_root):
    """FitNet = 10 * MSE(hint(student neck level), teacher neck level)."""
    algo, data = _build('fitnet', toy_data_root)
    algo.eval()
    algo.calculate_student_loss = False
    with torch.no_grad():
        losses = algo.loss(data['inputs'], data['data_samples'])
        s = algo.student.extract_feat(data['inputs'])
        t = algo.teacher.extract_feat(data['inputs'])
        hint = algo.distiller.connectors['hint2']
        expected = 10 * ((hint(s[2]) - t[2])**2).mean()
    torch.testing.assert_close(losses['distill.loss_fitnet_2'], expected)


def test_fgd_masks_and_zero_loss():
    loss = FGDLoss(student_channels=4, teacher_channels=4)
    fg, bg = loss.masks([torch.tensor([[0., 0., 8., 4.]]), torch.zeros(0, 4)], (16, 16),
                        (2, 4, 4), 'cpu')
    exp = torch.zeros(4, 4)
    exp[0, :2] = 0.5  # the box covers 2 x 1 cells of the 4 x 4 map: 1 / area each
    torch.testing.assert_close(fg[0], exp)
    assert fg[1].sum() == 0
    torch.testing.assert_close(bg[0].sum(), torch.tensor(1.0))
    torch.testing.assert_close(bg[1], torch.full((4, 4), 1 / 16))
    x = torch.randn(2, 4, 4, 4)
    # identical features: focal, attention and (zero-initialised) global parts vanish
    with torch.no_grad():
        loss.context_t.load_state_dict(loss.context_s.state_dict())
    assert float(loss(x, x, [torch.tensor([[0., 0., 8., 4.]]), torch.zeros(0, 4)],
                      (16, 16))) < 1e-8
    with pytest.raises(ValueError, match='differ'):
        loss(torch.randn(2, 4, 2, 2), x, [torch.zeros(0, 4)] * 2, (16, 16))


def test_rejects_tprd_and_bad_losses(toy_data_root):
    with pytest.raises(ValueError, match='has no TPRD variant'):
        _build('fitnet', toy_data_root, tprd=True)
    with pytest.raises(ValueError, match='not in distiller.distill_losses'):
        _build('fgd', toy_data_root, fgd_levels=dict(loss_nope=0))
