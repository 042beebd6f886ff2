"""D3ETR (with / without TPRD): adaptive + fixed matching, attention-map distillation."""
import copy
import warnings

import pytest
import torch
from mmengine.registry import init_default_scope
from mmrazor.registry import MODELS
from toy_helpers import build_toy, load_toy_config, perturb_parameters, toy_inputs

from mmdet_ksdetr.distill.d3etr.d3etr import _sub_matrix
from mmdet_ksdetr.distill.core import DecoderAttentionRecorder, get_detr_internals
from mmdet_ksdetr.distill.core.pair_kd_loss import PairKDLoss

CFG = 'toy/d3etr/d3etr_deformable-detr_tiny-r18_1xb2-12e_toy.py'
CFG_TPRD = 'toy/d3etr/d3etr-tprd_deformable-detr_tiny-r18_1xb2-12e_toy.py'


def _build(path, data_root, seed=0, **algo):
    cfg, model = build_toy(path, data_root, seed, replace=True, teacher_ckpt=None, **algo)
    return model, toy_inputs(model, cfg, data_root)


def _perturb_and_copy(algo, seed=3):
    perturb_parameters(algo.teacher, seed)
    algo.student.load_state_dict(algo.teacher.state_dict())


def test_sub_matrix():
    a = torch.arange(2 * 4 * 4.).view(2, 4, 4)
    idx = torch.tensor([[2, 0], [1, 3]])
    out = _sub_matrix(a, idx)
    assert out[0].tolist() == [[a[0, 2, 2], a[0, 2, 0]], [a[0, 0, 2], a[0, 0, 0]]]
    assert out[1].tolist() == [[a[1, 1, 1], a[1, 1, 3]], [a[1, 3, 1], a[1, 3, 3]]]


def test_recorder_records_the_decoder_attention(toy_data_root):
    algo, data = _build(CFG, toy_data_root)
    algo.eval()
    rec = DecoderAttentionRecorder(algo.teacher.decoder)
    with torch.no_grad(), rec.record() as log:
        t = get_detr_internals(algo.teacher, data['inputs'], data['data_samples'])
    (attn, ) = log.passes()
    L, B, Q = t.num_layers, t.batch_size, t.num_queries
    assert attn.self_attn.shape == (L, B, Q, Q)
    torch.testing.assert_close(attn.self_attn.sum(-1), torch.ones(L, B, Q))
    H, Lv, P = 8, 4, 4
    assert attn.cross_weights.shape == (L, B, Q, H, Lv, P)
    torch.testing.assert_close(attn.cross_weights.sum((-1, -2)), torch.ones(L, B, Q, H))
    # layer-0 locations start around the reference points (valid ratio 1 for unpadded images)
    assert attn.cross_locations.shape == (L, B, Q, H, Lv, P, 2)
    # hooks are removed after the block
    with torch.no_grad():
        get_detr_internals(algo.teacher, data['inputs'], data['data_samples'])
    assert len(log.passes()) == 1
    with rec.record() as empty:
        pass
    with pytest.raises(RuntimeError, match='no decoder pass'):
        empty.passes()
    # the capture returns the maps in the internals (main pass first, then each group's)
    with torch.no_grad():
        t2 = get_detr_internals(algo.teacher, data['inputs'], data['data_samples'],
                                attention=rec, groups=algo.student_groups(t))
    torch.testing.assert_close(t2.attention.self_attn, attn.self_attn)
    torch.testing.assert_close(t2.groups['fixed'].attention.self_attn, attn.self_attn)


@pytest.mark.parametrize('tprd', [False, True])
def test_identical_student(tprd, toy_data_root):
    """A student identical to the teacher: fixed pairs are the identity, the adaptive matching
    finds it too; every box and attention loss is 0 and the class loss is the teacher's own
    soft-BCE (its entropy) / decoupled KD (0 without refinement) per B * Q."""
    algo, data = _build(CFG_TPRD if tprd else CFG, toy_data_root, tprd=tprd)
    _perturb_and_copy(algo)
    algo.eval()
    algo.calculate_student_loss = False  # deformable DETR's loss() needs training mode
    with torch.no_grad():
        t = algo.teacher_forward(data['inputs'], data['data_samples'])
        _, s = algo.student_forward(data['inputs'], data['data_samples'], t)
        losses = algo.compute_distill_losses(s, t, data['data_samples'])
    groups = ('adaptive', 'fixed')
    for g in groups:
        for k in ('loss_bbox', 'loss_iou', 'loss_self_attn', 'loss_cross_attn'):
            if tprd and k in ('loss_bbox', 'loss_iou'):
                continue  # refined boxes differ from the raw ones the student reproduces
            assert abs(float(losses[f'{k}_{g}'])) < 1e-4, (k, g, float(losses[f'{k}_{g}']))
            assert f'd0.{k}_{g}' in losses
    p = t.cls_logits[-1].sigmoid()
    entropy = -(p * p.log() + (1 - p) * (1 - p).log()).sum() / (t.batch_size * t.num_queries)
    if not tprd:
        for g in groups:
            torch.testing.assert_close(losses[f'loss_cls_{g}'], entropy, rtol=1e-4, atol=1e-5)
    else:
        ref = algo.teacher_targets(t.cls_logits, t.bbox_preds, data['data_samples'])
        C = t.cls_logits.shape[-1]
        B, N = t.batch_size, t.num_queries
        manual = PairKDLoss(loss_cls_weight=3.0)(
            s.cls_logits[-1].reshape(-1, C), s.bbox_preds[-1].reshape(-1, 4),
            ref.logits[-1].reshape(-1, C), ref.boxes[-1].reshape(-1, 4),
            t.img_size_factors()[:, None].expand(B, N, 4).reshape(-1, 4),
            ref.pos_labels[-1].reshape(-1), num_queries=B * N)
        for k in ('loss_cls', 'loss_bbox', 'loss_iou'):
            torch.testing.assert_close(losses[f'{k}_fixed'], manual[k])


@pytest.mark.parametrize('path', [CFG, CFG_TPRD])
def test_training_step(path, toy_data_root):
    algo, data = _build(path, toy_data_root)
    with torch.no_grad():
        for p in algo.teacher.parameters():  # non-uniform teacher attention
            p.add_(torch.randn_like(p) * 0.05)
    algo.train()
    losses = algo.loss(data['inputs'], data['data_samples'])
    assert all(torch.isfinite(v) for v in losses.values())
    assert float(losses['distill.loss_cross_attn_fixed'].detach()) > 0
    assert float(losses['distill.loss_self_attn_adaptive'].detach()) > 0
    sum(v for k, v in losses.items() if k.startswith('distill.')).backward()
    assert all(p.grad is None for p in algo.teacher.parameters())
    cross = algo.student.decoder.layers[0].cross_attn
    assert cross.attention_weights.weight.grad.abs().sum() > 0
    assert algo.student.backbone.conv1.weight.grad.abs().sum() > 0


def test_bad_config(toy_data_root):
    cfg = load_toy_config(CFG, toy_data_root)
    cfg.model.teacher_ckpt = None
    cfg.model.distiller.distill_losses = dict(loss_self_attn=copy.deepcopy(
        cfg.model.distiller.distill_losses.loss_self_attn))
    init_default_scope('mmdet')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        with pytest.raises(ValueError, match='loss_adaptive'):
            MODELS.build(cfg.model)
    cfg.model.distiller.distill_losses = dict(loss_adaptive=dict(type='AttentionMapLoss'))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        with pytest.raises(TypeError, match='must be a PairKDLoss'):
            MODELS.build(cfg.model)
