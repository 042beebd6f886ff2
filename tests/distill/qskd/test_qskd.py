"""QSKD (with / without TPRD): group query selection and attention-guided feature KD."""

import numpy as np
import pytest
import torch
from toy_helpers import build_toy_model, load_toy_config, toy_batch

from mmdet_ksdetr.distill.qskd.qskd import _max_giou_to_gt, _query_of_gt
from mmdet_ksdetr.distill.qskd.qskd_feature_loss import (AttnGuidedFeatureLoss,
                                                           splat_attention)

CFG = 'toy/qskd/qskd_deformable-detr_tiny-r18_1xb2-12e_toy.py'
CFG_TPRD = 'toy/qskd/qskd-tprd_deformable-detr_tiny-r18_1xb2-12e_toy.py'


def _build(path, data_root, seed=0, same_student=False, **algo):
    cfg = load_toy_config(path, data_root)
    cfg.model.teacher_ckpt = None
    if same_student:
        cfg.model.architecture = cfg.model.teacher.copy()
    cfg.model.update(algo)
    model = build_toy_model(cfg, seed)
    data = model.data_preprocessor(toy_batch(cfg, data_root, 'train', 2), True)
    return model, data


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


def test_splat_attention_and_feature_mask():
    # one image, two queries, one head, two levels (4x4 and 2x2), one point each
    shapes = torch.tensor([[4, 4], [2, 2]])
    w = torch.ones(1, 2, 1, 2, 1) * 0.5
    loc = torch.tensor([[0.6, 0.1], [0.9, 0.9]]).view(1, 1, 1, 2, 1, 2).repeat(1, 2, 1, 1, 1, 1)
    loc[0, 1, 0, 0, 0] = torch.tensor([1.5, 0.5])  # outside: dropped
    qw = torch.tensor([[2.0, 1.0]])
    maps = splat_attention(w, loc, shapes, qw)
    assert maps[0].shape == (1, 4, 4) and maps[1].shape == (1, 2, 2)
    exp0 = torch.zeros(4, 4)
    exp0[0, 2] = 1.0  # x = 0.6 * 4 -> col 2, y = 0.1 * 4 -> row 0; weight 2 * 0.5
    torch.testing.assert_close(maps[0][0], exp0)
    exp1 = torch.zeros(2, 2)
    exp1[1, 1] = 2 * 0.5 + 1 * 0.5
    torch.testing.assert_close(maps[1][0], exp1)
    loss = AttnGuidedFeatureLoss(loss_weight=1.0)
    masks = loss.masks(w, loc, shapes, qw)
    assert float(masks[0].max()) == 1.0 and float(masks[1].max()) == 1.0
    fs = [torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 2, 2)]
    ft = [torch.ones(1, 3, 4, 4), torch.ones(1, 3, 2, 2)]
    # only the masked cells count: level 0 one cell of 16, level 1 one cell of 4
    torch.testing.assert_close(loss(fs, ft, w, loc, shapes, qw), torch.tensor(1 / 16 + 1 / 4))


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
