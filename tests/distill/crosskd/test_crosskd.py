"""CrossKD (TPRD release's DETR variant): the teacher's decoder and head on the student's
memory; gradients reach only the student's encoder / neck / backbone."""
import copy

import pytest
import torch
import torch.nn.functional as F
from mmengine.optim import build_optim_wrapper
from toy_helpers import (build_toy_model, disable_dropout, load_toy_config, perturb_parameters,
                         toy_config, toy_inputs)

from mmdet_ksdetr.distill.core import get_detr_internals

CFG = 'toy/crosskd/crosskd_deformable-detr_tiny-r18_1xb2-12e_toy.py'


def _cfg(data_root, same_student=False, **algo):
    return toy_config(CFG, data_root, same_student, teacher_ckpt=None, **algo)


def _build(cfg, seed=0):
    # noise off the L1 kinks of fresh DETR heads
    return perturb_parameters(build_toy_model(cfg, seed), seed=11)


def _grad_sum(module):
    return sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)


def test_gradients_reach_only_the_student_encoder_side(toy_data_root):
    """The CrossKD losses alone: gradients in the student's encoder, neck and backbone, none
    in its decoder, head or queries, none in the teacher."""
    cfg = _cfg(toy_data_root)
    algo = _build(cfg)
    disable_dropout(algo).train()
    data = toy_inputs(algo, cfg, toy_data_root)
    losses = algo.loss(data['inputs'], data['data_samples'])
    L = cfg.model.architecture.decoder.num_layers
    for key in ('loss_cls_kd', 'loss_bbox_kd', 'loss_iou_kd'):
        assert f'distill.{key}' in losses and f'distill.d{L - 2}.{key}' in losses
    assert any(k.startswith('student.') for k in losses)
    sum(v for k, v in losses.items() if k.startswith('distill.')).backward()
    s = algo.student
    assert _grad_sum(s.encoder) > 0 and _grad_sum(s.neck) > 0 and _grad_sum(s.backbone) > 0
    assert s.level_embed.grad is not None and s.level_embed.grad.abs().sum() > 0
    for part in (s.decoder, s.bbox_head, s.query_embedding, s.reference_points_fc):
        assert all(p.grad is None for p in part.parameters()), type(part).__name__
    assert all(p.grad is None for p in algo.teacher.parameters())


def test_teacher_bit_identical_after_optimizer_step(toy_data_root):
    cfg = _cfg(toy_data_root)
    algo = _build(cfg)
    algo.train()
    before = {k: v.clone() for k, v in algo.teacher.state_dict().items()}
    s_before = algo.student.encoder.layers[0].ffn.layers[1].weight.detach().clone()
    optim = build_optim_wrapper(algo, cfg.optim_wrapper)
    data = toy_inputs(algo, cfg, toy_data_root)
    losses = algo.loss(data['inputs'], data['data_samples'])
    optim.update_params(sum(v for k, v in losses.items() if 'loss' in k))
    for k, v in algo.teacher.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert not torch.equal(algo.student.encoder.layers[0].ffn.layers[1].weight, s_before)
    assert not algo.teacher.training


def test_student_equal_to_teacher(toy_data_root):
    """Student = teacher: the cross predictions are the teacher's own, so the box terms are
    zero and the class term is the entropy of the teacher's sigmoid scores / (B x Q)."""
    cfg = _cfg(toy_data_root, same_student=True)
    algo = _build(cfg)
    algo.student.load_state_dict(algo.teacher.state_dict())
    algo.eval()
    data = toy_inputs(algo, cfg, toy_data_root)
    t = get_detr_internals(algo.teacher, data['inputs'], data['data_samples']).detach()
    s = get_detr_internals(algo.student, data['inputs'], data['data_samples'])
    losses = algo.compute_distill_losses(s, t, data['data_samples'])
    L, B, Q, _ = t.cls_logits.shape
    for l in range(L):
        prefix = '' if l == L - 1 else f'd{l}.'
        z = t.cls_logits[l]
        entropy = F.binary_cross_entropy_with_logits(z, z.sigmoid(), reduction='sum') / (B * Q)
        torch.testing.assert_close(losses[prefix + 'loss_cls_kd'], entropy)
        assert float(losses[prefix + 'loss_cls_kd']) > 0.1
        assert abs(float(losses[prefix + 'loss_bbox_kd'])) < 1e-6
        assert abs(float(losses[prefix + 'loss_iou_kd'])) < 1e-5
    # a different student memory moves the cross predictions off the teacher's
    perturb_parameters(algo.student.encoder, seed=3)
    s = get_detr_internals(algo.student, data['inputs'], data['data_samples'])
    moved = algo.compute_distill_losses(s, t, data['data_samples'])
    assert float(moved['loss_bbox_kd']) > 1e-3


@pytest.mark.parametrize('change, match', [
    (dict(embed_dims=128), 'embed_dims'),
    (dict(num_feature_levels=3), 'num_feature_levels'),
    (dict(decoder_layers=1), 'decoder num_layers'),
    (dict(variant='dab'), 'same DETR variant'),
    (dict(tprd=True), 'no TPRD variant'),
])
def test_build_time_errors(toy_data_root, change, match):
    cfg = _cfg(toy_data_root)
    s = cfg.model.architecture
    if 'embed_dims' in change:
        d = change['embed_dims']
        for part in ('encoder', 'decoder'):
            for attn in ('self_attn_cfg', 'cross_attn_cfg'):
                if attn in s[part].layer_cfg:
                    s[part].layer_cfg[attn].embed_dims = d
            s[part].layer_cfg.ffn_cfg.embed_dims = d
        s.positional_encoding.num_feats = d // 2
        s.neck.out_channels = d
    if 'num_feature_levels' in change:
        n = change['num_feature_levels']
        s.num_feature_levels = n
        s.neck.num_outs = n
        for part in ('encoder', 'decoder'):
            attn = 'self_attn_cfg' if part == 'encoder' else 'cross_attn_cfg'
            s[part].layer_cfg[attn].num_levels = n
    if 'decoder_layers' in change:
        s.decoder.num_layers = change['decoder_layers']
    if 'variant' in change:
        cfg.model.architecture = copy.deepcopy(
            load_toy_config('toy/kd_detr/kd-detr_dab-detr_tiny-r18_1xb2-12e_toy.py').model
            .architecture)
    if 'tprd' in change:
        cfg.model.tprd = True
    with pytest.raises(ValueError, match=match):
        _build(cfg)
