"""TargetAwareFeatLoss: the mask equals DETRDistill's per-query formula, weights use score x IoU
(score alone without GT), the loss masks the squared error and only the student gets
gradients."""
import pytest
import torch
import torch.nn.functional as F

from mmdet_ksdetr.distill.detr_distill.target_aware_feat_loss import (TargetAwareFeatLoss,
                                                                      target_aware_masks)


def _iou(a, b):
    ix = max(0., min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0., min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def _naive_mask(feat, queries, scores, boxes, gts, topk, min_value):
    """The TFD formula written literally for one image: K x H x W similarity maps summed."""
    n, c = scores.shape
    vals, idx = scores.flatten().topk(topk)
    f = F.normalize(feat, dim=0)  # (D, H, W)
    acc = torch.zeros(feat.shape[1:])
    for s, flat in zip(vals.tolist(), idx.tolist()):
        q = flat // c
        w = s * max(_iou(boxes[q].tolist(), g.tolist()) for g in gts) if len(gts) else s
        acc += w * torch.einsum('d,dhw->hw', F.normalize(queries[q], dim=0), f)
    acc = acc.clamp(min=min_value)
    return acc / acc.max()


def _case(seed=0):
    g = torch.Generator().manual_seed(seed)
    B, N, C, D = 2, 6, 3, 8
    feats = [torch.randn(B, D, 5, 7, generator=g), torch.randn(B, D, 3, 4, generator=g)]
    queries = torch.randn(B, N, D, generator=g)
    scores = torch.rand(B, N, C, generator=g)
    xy = torch.rand(B, N, 2, generator=g) * 40
    boxes = torch.cat([xy, xy + 10 + torch.rand(B, N, 2, generator=g) * 30], -1)
    gts = [torch.tensor([[5., 5., 40., 30.], [20., 10., 60., 50.]]), torch.zeros(0, 4)]
    return feats, queries, scores, boxes, gts


def test_mask_matches_naive_formula():
    feats, queries, scores, boxes, gts = _case()
    masks = target_aware_masks(feats, queries, scores, boxes, gts, topk=7, min_value=0.01)
    for m, feat in zip(masks, feats):
        assert m.shape == (2, ) + feat.shape[2:]
        for b in range(2):
            ref = _naive_mask(feat[b], queries[b], scores[b], boxes[b], gts[b], 7, 0.01)
            torch.testing.assert_close(m[b], ref, rtol=1e-4, atol=1e-5)
            assert m[b].max().item() == pytest.approx(1.0)


def test_loss_value_and_gradients():
    feats_t, queries, scores, boxes, gts = _case(1)
    feats_s = [(f + 0.3 * torch.randn_like(f)).requires_grad_() for f in feats_t]
    loss_fn = TargetAwareFeatLoss(loss_weight=2.0, topk=5)
    loss = loss_fn(feats_s, feats_t, queries, scores, boxes, gts)
    masks = target_aware_masks(feats_t, queries, scores, boxes, gts, topk=5)
    expected = sum(((m[:, None] * (t - s))**2).mean() for m, s, t in zip(masks, feats_s, feats_t))
    assert loss.item() == pytest.approx(2.0 * expected.item(), rel=1e-5)
    loss.backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in feats_s)
    # the same features give zero loss
    assert loss_fn(feats_t, feats_t, queries, scores, boxes, gts).item() == 0


def test_several_layers_at_once_equal_one_call_per_layer():
    """forward_layers / layered masks: (L, B, ...) teacher tensors give the L per-layer
    results, values and student gradients."""
    cases = [_case(seed) for seed in (2, 3, 4)]
    feats_t = cases[0][0]
    feats_s = [(f + 0.3 * torch.randn_like(f)).requires_grad_() for f in feats_t]
    queries = torch.stack([c[1] for c in cases])
    scores = torch.stack([c[2] for c in cases])
    boxes = torch.stack([c[3] for c in cases])
    gts = cases[0][4]
    loss_fn = TargetAwareFeatLoss(topk=5)
    layered_masks = target_aware_masks(feats_t, queries, scores, boxes, gts, topk=5)
    losses = loss_fn.forward_layers(feats_s, feats_t, queries, scores, boxes, gts)
    assert losses.shape == (3, )
    grads = torch.autograd.grad(losses.sum(), feats_s)
    ref_grads = [torch.zeros_like(f) for f in feats_s]
    for l in range(3):
        for m, feat in zip(layered_masks, feats_t):
            assert m.shape == (3, 2) + feat.shape[2:]
        single = target_aware_masks(feats_t, queries[l], scores[l], boxes[l], gts, topk=5)
        for m, ref in zip(layered_masks, single):
            torch.testing.assert_close(m[l], ref)
        ref = loss_fn(feats_s, feats_t, queries[l], scores[l], boxes[l], gts)
        torch.testing.assert_close(losses[l], ref)
        for acc, g in zip(ref_grads, torch.autograd.grad(ref, feats_s)):
            acc += g
    for g, ref in zip(grads, ref_grads):
        torch.testing.assert_close(g, ref)


def test_mask_follows_the_teacher_queries():
    """Pixels whose teacher feature points along the confident query get the mask's maximum."""
    D = 4
    feat = torch.full((1, D, 3, 3), 0.0)
    feat[0, 1] = 1.0  # all pixels along e1 ...
    feat[0, :, 1, 2] = torch.tensor([0., 0., 1., 0.])  # ... except one along e2
    queries = torch.zeros(1, 2, D)
    queries[0, 0, 2] = 1.0  # confident query along e2
    queries[0, 1, 1] = 1.0  # weak query along e1
    scores = torch.tensor([[[0.9], [0.05]]])
    boxes = torch.tensor([[[0., 0., 10., 10.], [0., 0., 10., 10.]]])
    (mask, ) = target_aware_masks([feat], queries, scores, boxes, [torch.zeros(0, 4)], topk=2)
    assert mask[0, 1, 2] == 1.0 and mask[0, 0, 0].item() == pytest.approx(0.05 / 0.9, rel=1e-4)


def test_shape_mismatch_is_a_clear_error():
    feats, queries, scores, boxes, gts = _case()
    with pytest.raises(ValueError, match='neck levels'):
        TargetAwareFeatLoss()(feats[:1], feats, queries, scores, boxes, gts)
    with pytest.raises(ValueError, match='same channels'):
        TargetAwareFeatLoss()([f[:, :4] for f in feats], feats, queries, scores, boxes, gts)
    with pytest.raises(ValueError, match='topk'):
        TargetAwareFeatLoss(topk=0)
