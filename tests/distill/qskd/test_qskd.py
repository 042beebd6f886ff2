"""QSKD (with / without TPRD): group query selection and attention-guided feature KD."""

import numpy as np
import pytest
import torch
from toy_helpers import build_toy, perturb_parameters, toy_inputs

from mmdet_ksdetr.distill.qskd import qskd_feature_loss
from mmdet_ksdetr.distill.qskd.qskd import (_feature_query_weights, _giou_to_gt, _max_giou_to_gt,
                                            _query_of_gt)
from mmdet_ksdetr.distill.qskd.qskd_feature_loss import (AttnGuidedFeatureLoss,
                                                         masked_squared_error, splat_attention)
from mmdet_ksdetr.distill.tprd.refinement import gt_from_data_samples, pad_gt

CFG = 'toy/qskd/qskd_deformable-detr_tiny-r18_1xb2-12e_toy.py'
CFG_TPRD = 'toy/qskd/qskd-tprd_deformable-detr_tiny-r18_1xb2-12e_toy.py'


def _build(path, data_root, seed=0, same_student=False, batch_seed=None, **algo):
    cfg, model = build_toy(path, data_root, seed, same_student=same_student, replace=True,
                           teacher_ckpt=None, **algo)
    return model, toy_inputs(model, cfg, data_root, seed=batch_seed)


def test_selection_helpers():
    gt_inds = torch.tensor([[-1, 1, -1, 0], [2, -1, -1, -1]])
    assert _query_of_gt(gt_inds, 3).tolist() == [[3, 1, -1], [-1, -1, 0]]
    boxes = torch.tensor([[[[0.25, 0.25, 0.5, 0.5], [0.9, 0.9, 0.1, 0.1]]]]).expand(1, 2, 2, 4)
    gt = torch.tensor([[[0.25, 0.25, 0.5, 0.5]], [[0., 0., 0., 0.]]])
    f = torch.tensor([[100., 100., 100., 100.]] * 2)
    g = _max_giou_to_gt(boxes, gt, torch.tensor([1, 0]), f)
    assert g.shape == (1, 2, 2)
    torch.testing.assert_close(g[0, 0, 0], torch.tensor(1.0))
    assert -1 < float(g[0, 0, 1]) < 0  # disjoint box: negative GIoU, not a hard negative
    assert (g[0, 1] == -2).all()  # image without GT


def _one_point(x, y, shapes=((4, 4), ), weight=1.0, mode='bilinear'):
    """Splat one sampling point (one image, query, head, point) on every level of ``shapes``."""
    lv = len(shapes)
    w = torch.full((1, 1, 1, lv, 1), weight)
    loc = torch.tensor([x, y]).view(1, 1, 1, 1, 1, 2).repeat(1, 1, 1, lv, 1, 1)
    return splat_attention(w, loc, torch.tensor(shapes), torch.ones(1, 1), mode=mode)


def test_bilinear_splat_by_hand():
    """Cell i sits at grid coordinate i (x * w = i): a point on a cell corner lands wholly in
    one cell, one at a cell centre is shared by 4, shares outside the map are dropped."""
    corner = _one_point(2 / 4, 1 / 4)[0][0]  # grid (2, 1): row 1, column 2
    exp = torch.zeros(4, 4)
    exp[1, 2] = 1.0
    torch.testing.assert_close(corner, exp)
    centre = _one_point(2.5 / 4, 1.5 / 4)[0][0]  # grid (2.5, 1.5)
    exp = torch.zeros(4, 4)
    exp[1:3, 2:4] = 0.25
    torch.testing.assert_close(centre, exp)
    uneven = _one_point(1.25 / 4, 0.5 / 4, weight=2.0)[0][0]  # dx 0.25, dy 0.5
    exp = torch.zeros(4, 4)
    exp[0, 1], exp[0, 2], exp[1, 1], exp[1, 2] = 0.75, 0.25, 0.75, 0.25
    torch.testing.assert_close(uneven, exp)
    border = _one_point(3.5 / 4, 0.5 / 4)[0][0]  # column 4 is outside: half the mass lost
    exp = torch.zeros(4, 4)
    exp[0, 3], exp[1, 3] = 0.25, 0.25
    torch.testing.assert_close(border, exp)
    left = _one_point(-0.25 / 4, 2 / 4)[0][0]  # column -1 dropped, column 0 keeps 0.75
    exp = torch.zeros(4, 4)
    exp[2, 0] = 0.75
    torch.testing.assert_close(left, exp)
    for x, y in ((1.0, 1.0), (5.0, 0.5), (-3.0, -3.0)):  # on the far border / far outside
        assert float(_one_point(x, y)[0].abs().sum()) == 0.0
    # nearest (the earlier behaviour, an option): the whole weight in floor(x * w)
    near = _one_point(2.5 / 4, 1.5 / 4, mode='nearest')[0][0]
    exp = torch.zeros(4, 4)
    exp[1, 2] = 1.0
    torch.testing.assert_close(near, exp)
    # flat: levels one after another, row-major (the memory's token order)
    flat = splat_attention(torch.ones(1, 1, 1, 2, 1), torch.tensor([[0.5, 0.25], [0.5, 0.5]]).view(
        1, 1, 1, 2, 1, 2), torch.tensor([[4, 4], [2, 2]]), torch.ones(1, 1), flat=True)
    assert flat.shape == (1, 20) and flat[0, 1 * 4 + 2] == 1.0 and flat[0, 16 + 1 * 2 + 1] == 1.0
    assert float(flat.sum()) == 2.0


def _memory_case(weights, peaks_at, shapes=((4, 4), (2, 2))):
    """One image, one selected query with one point per level at grid (peaks_at[l]) (a cell
    corner: the whole weight in one cell); student memory 0, teacher 1."""
    lv = len(shapes)
    w = torch.tensor(weights, dtype=torch.float32).view(1, 1, 1, lv, 1)
    loc = torch.tensor([[x / s[1], y / s[0]] for (x, y), s in zip(peaks_at, shapes)])
    loc = loc.view(1, 1, 1, lv, 1, 2)
    S = sum(h * w_ for h, w_ in shapes)
    return w, loc, torch.tensor(shapes), torch.zeros(1, S, 3), torch.ones(1, S, 3)


def test_mask_two_levels_share_one_peak():
    """Two levels with different peaks (0.6 and 0.3, weight 1 + GIoU = 1.5): one peak over all
    levels (0.9) scales both; per-level normalisation (an option) lifts each to 1."""
    w, loc, shapes, fs, ft = _memory_case([0.6, 0.3], [(1, 2), (1, 1)])
    qw = torch.tensor([[1.5]])
    loss = AttnGuidedFeatureLoss(loss_weight=1.0)
    m0, m1 = loss.masks(w, loc, shapes, qw)
    assert float(m0[0, 2, 1]) == pytest.approx(1.0) and float(m1[0, 1, 1]) == pytest.approx(0.5)
    assert float(m0.sum() + m1.sum()) == pytest.approx(1.5)
    # one MSE over all 20 tokens x 3 channels: (1^2 + 0.5^2) * 3 / 60
    torch.testing.assert_close(loss(fs, ft, w, loc, shapes, qw), torch.tensor(1.25 * 3 / 60))
    per_level = AttnGuidedFeatureLoss(loss_weight=1.0, normalize='per_level')
    m0, m1 = per_level.masks(w, loc, shapes, qw)
    assert float(m0.max()) == pytest.approx(1.0) and float(m1.max()) == pytest.approx(1.0)
    # neck features (an option): per-level MSEs summed, 1 cell of 16 and 1 of 4
    neck = AttnGuidedFeatureLoss(loss_weight=1.0, normalize='per_level', features='neck')
    fsn = [torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 2, 2)]
    ftn = [torch.ones(1, 3, 4, 4), torch.ones(1, 3, 2, 2)]
    torch.testing.assert_close(neck(fsn, ftn, w, loc, shapes, qw), torch.tensor(1 / 16 + 1 / 4))


def test_mask_thin_attention_floor():
    """Attention so thin that its peak (0.004 * 1.5 = 0.006) is under the 1e-2 floor: the mask
    is divided by 1e-2, not by its peak, so it never reaches 1."""
    w, loc, shapes, fs, ft = _memory_case([0.004, 0.001], [(0, 0), (1, 0)])
    qw = torch.tensor([[1.5]])
    loss = AttnGuidedFeatureLoss(loss_weight=2.0)
    m0, m1 = loss.masks(w, loc, shapes, qw)
    assert float(m0[0, 0, 0]) == pytest.approx(0.6) and float(m1[0, 0, 1]) == pytest.approx(0.15)
    torch.testing.assert_close(loss(fs, ft, w, loc, shapes, qw),
                               torch.tensor(2.0 * (0.36 + 0.0225) * 3 / 60))
    # a floor of 1e-12 would have lifted the peak to 1
    assert float(AttnGuidedFeatureLoss(min_peak=1e-12).masks(w, loc, shapes, qw)[0].max()) == \
        pytest.approx(1.0)


def test_mask_mean_over_selected_queries_and_image_without_selection():
    """The mask is the mean over the *selected* queries of (1 + GIoU) * attention; an image
    without selected queries (no GT) has an all-zero mask and adds nothing."""
    shapes = torch.tensor([[2, 2]])
    w = torch.full((2, 3, 1, 1, 1), 0.5)
    loc = torch.tensor([[0.0, 0.0], [0.5, 0.0], [0.5, 0.5]]).view(1, 3, 1, 1, 1, 2).repeat(
        2, 1, 1, 1, 1, 1)  # cells 0, 1 and 3
    qw = torch.tensor([[1.5, 0.5, 0.0], [0.0, 0.0, 0.0]])
    selected = torch.tensor([[True, True, True], [False, False, False]])
    loss = AttnGuidedFeatureLoss(loss_weight=1.0)
    (m, ) = loss.masks(w, loc, shapes, qw, selected)
    # image 0: 3 selected, cells 0.25 / 0.0833 / 0 -> / 0.25
    torch.testing.assert_close(m[0].flatten(), torch.tensor([1.0, 1 / 3, 0.0, 0.0]))
    assert float(m[1].abs().sum()) == 0.0
    fs, ft = torch.zeros(2, 4, 1), torch.ones(2, 4, 1)
    torch.testing.assert_close(loss(fs, ft, w, loc, shapes, qw, selected),
                               torch.tensor((1 + 1 / 9) / 8))


def test_feature_loss_rejects_mismatched_memory():
    w, loc, shapes, fs, ft = _memory_case([0.5, 0.5], [(0, 0), (0, 0)])
    loss = AttnGuidedFeatureLoss()
    with pytest.raises(ValueError, match='encoder memories must both be'):
        loss(fs[..., :2], ft, w, loc, shapes, torch.ones(1, 1))
    with pytest.raises(ValueError, match='encoder memories must both be'):
        loss(fs[:, :5], ft[:, :5], w, loc, shapes, torch.ones(1, 1))
    with pytest.raises(ValueError, match='splat must be one of'):
        AttnGuidedFeatureLoss(splat='area')


@pytest.mark.parametrize('block', [None, 1 << 18, 7, 1])
@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
@pytest.mark.parametrize('channel_dim', [2, 1])
def test_masked_squared_error_equals_masked_mse(monkeypatch, block, dtype, channel_dim):
    """The per-token form (the whole tensor at once as on a GPU, one block per image, blocks of 7
    and 1 elements: several blocks per image, a short last one) gives the masked MSE
    ``((m * fs - m * ft)**2).mean()`` and its gradient; none reaches the teacher or the mask.
    Memory layout (B, S, D) and neck layout (B, D, S)."""
    monkeypatch.setattr(qskd_feature_loss, 'CPU_BLOCK_ELEMENTS', block)
    g = torch.Generator().manual_seed(0)
    shape = (2, 11, 3) if channel_dim == 2 else (2, 3, 11)
    fs = torch.randn(*shape, generator=g, dtype=dtype).requires_grad_()
    ft = torch.randn(*shape, generator=g, dtype=dtype).requires_grad_()
    mask = torch.rand(2, 11, generator=g).requires_grad_()
    got = masked_squared_error(fs, ft, mask, channel_dim)
    (g_got, ) = torch.autograd.grad(got, fs)
    m = mask.detach().unsqueeze(channel_dim).to(dtype)
    ref = ((m * fs - m * ft.detach())**2).mean()
    (g_ref, ) = torch.autograd.grad(ref, fs)
    assert got.dtype == dtype
    torch.testing.assert_close(got, ref)
    torch.testing.assert_close(g_got, g_ref)
    assert torch.autograd.grad(got, [ft, mask], allow_unused=True) == (None, None)


@pytest.mark.parametrize('channel_dim', [2, 1])
def test_masked_squared_error_gradcheck(monkeypatch, channel_dim):
    monkeypatch.setattr(qskd_feature_loss, 'CPU_BLOCK_ELEMENTS', 5)
    g = torch.Generator().manual_seed(1)
    shape = (2, 9, 4) if channel_dim == 2 else (2, 4, 9)
    fs = torch.randn(*shape, generator=g, dtype=torch.float64).requires_grad_()
    ft = torch.randn(*shape, generator=g, dtype=torch.float64)
    mask = torch.rand(2, 9, generator=g, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: masked_squared_error(x, ft, mask, channel_dim),
                                    (fs, ))


def test_masked_squared_error_half_accumulates_in_float32():
    """float16 features: the squared norm of 256 channels of difference 16 (65536) overflows
    float16, the float32 accumulation does not; the result is float16 (1 after the mean)."""
    fs = torch.zeros(1, 2, 256, dtype=torch.float16, requires_grad=True)
    ft = torch.full((1, 2, 256), 16.0, dtype=torch.float16)
    loss = masked_squared_error(fs, ft, torch.full((1, 2), 1 / 16))
    assert loss.dtype == torch.float16 and float(loss.detach()) == 1.0
    loss.backward()
    assert fs.grad.dtype == torch.float16 and torch.isfinite(fs.grad).all()


def test_positive_weight_uses_matched_gt():
    """A positive query weighs 1 + GIoU to the GT it is assigned to, even when it overlaps
    another GT more; hard negatives take their best GIoU; the rest are not selected."""
    giou = torch.tensor([[[0.2, 0.7], [0.4, 0.1], [-0.3, -0.5], [0.3, -0.6]]])  # (1, 4, G=2)
    gt_inds = torch.tensor([[0, -1, -1, 1]])
    selected, weights = _feature_query_weights(gt_inds, giou)
    assert selected.tolist() == [[True, True, False, True]]
    torch.testing.assert_close(weights, torch.tensor([[1.2, 1.4, 0.0, 0.4]]))
    # image without GT slots at all
    selected, weights = _feature_query_weights(torch.full((1, 3), -1), torch.zeros(1, 3, 0))
    assert not selected.any() and float(weights.abs().sum()) == 0.0


@pytest.mark.parametrize('tprd', [False, True])
def test_identical_student(tprd, toy_data_root):
    """Identical student and teacher: positives pair the same query (same GT assignment), hard
    negatives match to themselves, so boxes and features agree exactly (raw targets)."""
    algo, data = _build(CFG_TPRD if tprd else CFG, toy_data_root, same_student=True, tprd=tprd)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in algo.teacher.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    algo.student.load_state_dict(algo.teacher.state_dict())
    algo.eval()
    algo.calculate_student_loss = False
    with torch.no_grad():
        t = algo.teacher_forward(data['inputs'], data['data_samples'])
        _, s = algo.student_forward(data['inputs'], data['data_samples'], t)
        losses = algo.compute_distill_losses(s, t, data['data_samples'])
    assert {'loss_cls_kd', 'loss_bbox_kd', 'loss_iou_kd', 'loss_feat_kd',
            'd0.loss_feat_kd'} <= set(losses)
    assert abs(float(losses['loss_feat_kd'])) < 1e-6
    if not tprd:
        assert abs(float(losses['loss_bbox_kd'])) < 1e-4
        assert abs(float(losses['loss_iou_kd'])) < 1e-4
    # selected pairs exist: positives (one per GT) and hard negatives
    assert sum(len(d.gt_instances) for d in data['data_samples']) > 0


@pytest.mark.parametrize('path', [CFG, CFG_TPRD])
def test_training_step(path, toy_data_root):
    algo, data = _build(path, toy_data_root)
    algo.train()
    losses = algo.loss(data['inputs'], data['data_samples'])
    for k in ('loss_cls_kd', 'loss_bbox_kd', 'loss_iou_kd', 'loss_feat_kd'):
        assert f'distill.{k}' in losses and f'distill.d0.{k}' in losses
    assert all(torch.isfinite(v) for v in losses.values())
    sum(v for k, v in losses.items() if k.startswith('distill.')).backward()
    assert all(p.grad is None for p in algo.teacher.parameters())
    assert algo.student.neck.convs[0].conv.weight.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in algo.student.bbox_head.parameters())


def test_hard_negative_matching_rejects_non_finite_cost(toy_data_root):
    """The hard-negative Hungarian matching checks the cost it hands to scipy: NaN/inf there
    raises TrainingDivergedError, outside the selected rows / columns it is never read."""
    from mmdet_ksdetr.utils import TrainingDivergedError
    algo, _ = _build(CFG, toy_data_root)
    cost = torch.rand(1, 4, 3).numpy()  # the matching runs on the host copies
    s_hn = np.array([[True, True, False, False]])
    t_hn = np.array([[True, False, True]])
    cost[0, 3, 1] = float('nan')  # row 3 / column 1 are not hard negatives
    b, s, t = algo._hard_negative_pairs(cost, s_hn, t_hn)
    assert b.tolist() == [0, 0] and sorted(s.tolist()) == [0, 1]
    for bad in (float('nan'), float('inf')):
        cost[0, 1, 2] = bad
        with pytest.raises(TrainingDivergedError, match='QSKD hard-negative matching'):
            algo._hard_negative_pairs(cost, s_hn, t_hn)


def _internals(algo, data):
    algo.eval()
    algo.calculate_student_loss = False
    with torch.no_grad():
        t = algo.teacher_forward(data['inputs'], data['data_samples'])
        _, s = algo.student_forward(data['inputs'], data['data_samples'], t)
    return s, t


def test_layer_pairing_and_unequal_query_counts(toy_data_root):
    """Student 20 queries, teacher 30. 'release': teacher layer l's attention is masked by
    layer l - 1's selection (layer 0 by the last layer's), 'same_layer' by its own; the
    feature term reads the encoder memories."""
    algo, data = _build(CFG, toy_data_root, batch_seed=0)
    perturb_parameters(algo.teacher, seed=3, std=0.05)
    s, t = _internals(algo, data)
    assert (s.num_queries, t.num_queries) == (20, 30) and t.num_layers == 2
    with torch.no_grad():
        release = algo.compute_distill_losses(s, t, data['data_samples'])
        algo.layer_pairing = 'same_layer'
        same = algo.compute_distill_losses(s, t, data['data_samples'])
        t_gt = algo.teacher_targets(t.cls_logits, t.bbox_preds, data['data_samples']).pos_gt_inds
        labels, boxes = gt_from_data_samples(data['data_samples'])
        _, boxes, num_gts = pad_gt(labels, boxes, device='cpu')
        giou = _giou_to_gt(t.bbox_preds, boxes, num_gts, s.img_size_factors())
        loss, att = algo.losses['loss_feat'], t.attention

        # the two layers select differently (else the pairing could not show)
        assert not torch.equal(*[_feature_query_weights(t_gt[i], giou[i])[1] for i in (0, 1)])

        def term(attn_layer, select_layer):
            sel, qw = _feature_query_weights(t_gt[select_layer], giou[select_layer])
            assert sel.any()
            return loss(s.memory, t.memory, att.cross_weights[attn_layer],
                        att.cross_locations[attn_layer], att.spatial_shapes, qw, sel)

    torch.testing.assert_close(release['d0.loss_feat_kd'], term(0, 1))
    torch.testing.assert_close(release['loss_feat_kd'], term(1, 0))
    torch.testing.assert_close(same['d0.loss_feat_kd'], term(0, 0))
    torch.testing.assert_close(same['loss_feat_kd'], term(1, 1))
    assert float(release['loss_feat_kd']) != float(same['loss_feat_kd'])
    for k in ('loss_cls_kd', 'loss_bbox_kd', 'd0.loss_iou_kd'):  # predictions: unchanged
        assert float(release[k]) == float(same[k])
    with pytest.raises(ValueError, match="layer_pairing must be one of"):
        _build(CFG, toy_data_root, layer_pairing='shifted')


def test_images_without_gt(toy_data_root):
    """No GT in one image: nothing selected there; no GT at all: feature loss exactly 0."""
    algo, data = _build(CFG, toy_data_root, batch_seed=0)
    samples = data['data_samples']
    samples[1].gt_instances = samples[1].gt_instances[:0]
    s, t = _internals(algo, data)
    with torch.no_grad():
        losses = algo.compute_distill_losses(s, t, samples)
    assert all(torch.isfinite(v) for v in losses.values())
    assert float(losses['loss_feat_kd']) > 0
    samples[0].gt_instances = samples[0].gt_instances[:0]
    with torch.no_grad():
        losses = algo.compute_distill_losses(s, t, samples)
    assert float(losses['loss_feat_kd']) == 0.0 and float(losses['d0.loss_feat_kd']) == 0.0
