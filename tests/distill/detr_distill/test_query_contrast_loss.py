"""QueryContrastLoss: InfoNCE with the matched pair as positive, T scaling, trainable
projectors, no gradient into the teacher queries."""
import pytest
import torch
import torch.nn.functional as F

from mmdet_ksdetr.distill.detr_distill.query_contrast_loss import QueryContrastLoss


def test_info_nce_value_and_gradients():
    torch.manual_seed(0)
    loss_fn = QueryContrastLoss(in_channels=8, proj_channels=16, temperature=0.07,
                                loss_weight=0.2)
    s = torch.randn(6, 8, requires_grad=True)
    t = torch.randn(6, 8, requires_grad=True)
    loss = loss_fn(s, t)
    g_s = F.normalize(loss_fn.student_proj(s), dim=-1)
    g_t = F.normalize(loss_fn.teacher_proj(t), dim=-1)
    logits = g_t @ g_s.t() / 0.07
    manual = -torch.stack([logits[i].log_softmax(-1)[i] for i in range(6)]).mean()
    assert loss.item() == pytest.approx(0.2 * manual.item(), rel=1e-5)
    loss.backward()
    assert s.grad.abs().sum() > 0 and t.grad is None
    assert all(p.grad is not None for p in loss_fn.student_proj.parameters())
    assert all(p.grad is not None for p in loss_fn.teacher_proj.parameters())


def test_aligned_pairs_give_lower_loss():
    torch.manual_seed(0)
    loss_fn = QueryContrastLoss(in_channels=8, proj_channels=8).eval()
    with torch.no_grad():  # identical projectors: a pair of identical queries is the positive
        loss_fn.teacher_proj.load_state_dict(loss_fn.student_proj.state_dict())
    q = torch.randn(16, 8) * 3
    aligned = loss_fn(q, q)
    shuffled = loss_fn(q, q[torch.randperm(16)])
    assert aligned < shuffled


def test_degenerate_and_bad_input():
    loss_fn = QueryContrastLoss(in_channels=4, proj_channels=4)
    one = torch.randn(1, 4, requires_grad=True)
    assert loss_fn(one, torch.randn(1, 4)).item() == 0
    with pytest.raises(ValueError, match='matched pairs'):
        loss_fn(torch.randn(3, 4), torch.randn(2, 4))
    with pytest.raises(ValueError, match='temperature'):
        QueryContrastLoss(temperature=0)


@pytest.mark.parametrize('momentum', [0.1, None])
def test_several_layers_at_once_equal_one_call_per_layer(momentum):
    """forward_layers: each layer has its own BN batch statistics and negatives; values,
    gradients and the BN running statistics equal L separate calls."""
    import copy
    torch.manual_seed(0)
    batched = QueryContrastLoss(in_channels=8, proj_channels=16)
    for bn in (batched.student_proj[2], batched.teacher_proj[2]):
        bn.momentum = momentum
    single = copy.deepcopy(batched)
    s = torch.randn(3, 10, 8, requires_grad=True)
    t = torch.randn(3, 10, 8)
    losses = batched.forward_layers(s, t)
    assert losses.shape == (3, )
    grad = torch.autograd.grad(losses.sum(), [s] + list(batched.parameters()))
    refs = torch.stack([single(s[l], t[l]) for l in range(3)])
    ref_grad = torch.autograd.grad(refs.sum(), [s] + list(single.parameters()))
    torch.testing.assert_close(losses, refs)
    for a, b in zip(grad, ref_grad):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    for (name, a), b in zip(batched.state_dict().items(), single.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
