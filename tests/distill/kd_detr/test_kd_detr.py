"""KD-DETR (with / without TPRD): query groups, index alignment, loss wiring, DAB-DETR / DINO."""
import copy

import pytest
import torch
from toy_helpers import build_toy_model, load_toy_config, perturb_parameters, toy_config, toy_inputs

from mmdet_ksdetr.distill.kd_detr.kd_detr_loss import KDDETRLoss
from mmdet_ksdetr.distill.core import (decode_query_group, get_detr_internals, own_queries_group,
                                       query_kind, random_group)

CFG = {
    'deformable': 'toy/kd_detr/kd-detr_deformable-detr_tiny-r18_1xb2-12e_toy.py',
    'deformable_tprd': 'toy/kd_detr/kd-detr-tprd_deformable-detr_tiny-r18_1xb2-12e_toy.py',
    'dab': 'toy/kd_detr/kd-detr_dab-detr_tiny-r18_1xb2-12e_toy.py',
    'dab_tprd': 'toy/kd_detr/kd-detr-tprd_dab-detr_tiny-r18_1xb2-12e_toy.py',
    'dino': 'toy/kd_detr/kd-detr_dino-4scale_tiny-r18_1xb2-12e_toy.py',
    'dino_tprd': 'toy/kd_detr/kd-detr-tprd_dino-4scale_tiny-r18_1xb2-12e_toy.py',
}


def _cfg(name, data_root, same_student=False, **algo):
    return toy_config(CFG[name], data_root, same_student, replace=True, teacher_ckpt=None, **algo)


def _perturb_and_copy_teacher_to_student(algo, seed=3):
    """Random non-zero weights everywhere (mmdet zero-inits the last box layer), then the
    student becomes an exact copy of the teacher."""
    perturb_parameters(algo.teacher, seed)
    algo.student.load_state_dict(algo.teacher.state_dict())


@pytest.mark.parametrize('name', ['deformable', 'dab', 'dino'])
def test_identical_student_gets_zero_loss(name, toy_data_root):
    """Index alignment: a student identical to the teacher reproduces the teacher on both
    groups (same random queries to both models, teacher queries to the student), so every
    (layer-by-layer) KD-DETR loss is zero."""
    cfg = _cfg(name, toy_data_root, same_student=True, layer_by_layer=True)
    algo = build_toy_model(cfg)
    _perturb_and_copy_teacher_to_student(algo)
    algo.eval()
    data = toy_inputs(algo, cfg, toy_data_root)
    with torch.no_grad():
        t = get_detr_internals(algo.teacher, data['inputs'], data['data_samples'])
        s = get_detr_internals(algo.student, data['inputs'], data['data_samples'],
                               groups=algo.student_groups(t))
        losses = algo.compute_distill_losses(s, t, data['data_samples'])
    assert {'loss_cls_general', 'loss_bbox_specific', 'd0.loss_iou_specific'} <= set(losses)
    for k, v in losses.items():
        assert abs(float(v)) < 1e-4, (k, float(v))
    # the random general points change every step
    kind = query_kind(algo.student, s.decoder_inputs)
    g1 = random_group('general', kind, 5, 2, 256, 'cpu')
    g2 = random_group('general', kind, 5, 2, 256, 'cpu')
    first = (g1.query_pos if g1.query_pos is not None else g1.query)
    assert not torch.equal(first, g2.query_pos if g2.query_pos is not None else g2.query)


def test_group_predictions_index_aligned_with_own_forward(toy_data_root):
    """Decoding the teacher's own queries as a group reproduces its ordinary predictions."""
    cfg = _cfg('dino', toy_data_root)
    algo = build_toy_model(cfg)
    algo.eval()
    data = toy_inputs(algo, cfg, toy_data_root)
    with torch.no_grad():
        t = get_detr_internals(algo.teacher, data['inputs'], data['data_samples'])
        out = decode_query_group(algo.teacher, t.decoder_inputs, own_queries_group('own', t))
    torch.testing.assert_close(out.cls_logits, t.cls_logits)
    torch.testing.assert_close(out.bbox_preds, t.bbox_preds)


@pytest.mark.parametrize('name', ['deformable', 'deformable_tprd', 'dab_tprd', 'dino_tprd'])
def test_training_step_gradients(name, toy_data_root):
    cfg = _cfg(name, toy_data_root)
    algo = build_toy_model(cfg)
    algo.train()
    assert not algo.teacher.training
    data = toy_inputs(algo, cfg, toy_data_root)
    losses = algo.loss(data['inputs'], data['data_samples'])
    L = cfg.model.architecture.decoder.num_layers
    for group in ('general', 'specific'):
        for key in ('loss_cls', 'loss_bbox', 'loss_iou'):
            assert f'distill.{key}_{group}' in losses
            assert f'distill.d{L - 2}.{key}_{group}' in losses
    assert any(k.startswith('student.') for k in losses)
    assert all(torch.isfinite(v) for v in losses.values())
    # the distillation losses alone reach the student's decoder and backbone, not the teacher
    sum(v for k, v in losses.items() if k.startswith('distill.')).backward()
    assert all(p.grad is None for p in algo.teacher.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in algo.student.decoder.layers[0].parameters())
    assert algo.student.backbone.conv1.weight.grad.abs().sum() > 0


def test_tprd_switch_uses_refined_targets(toy_data_root):
    """tprd=True: the specific group's targets are the refined teacher predictions with the
    decoupled class loss (recomputed here by hand), layer by layer; tprd=False: the raw ones."""
    outs = {}
    for tprd in (False, True):
        cfg = _cfg('deformable', toy_data_root, same_student=True, tprd=tprd,
                   layer_by_layer=True)
        algo = build_toy_model(cfg)
        _perturb_and_copy_teacher_to_student(algo, seed=5)
        algo.eval()
        algo.distiller.distill_losses.pop('loss_general')
        algo.losses.pop('loss_general')
        data = toy_inputs(algo, cfg, toy_data_root)
        with torch.no_grad():
            t = get_detr_internals(algo.teacher, data['inputs'], data['data_samples'])
            s = get_detr_internals(algo.student, data['inputs'], data['data_samples'],
                                   groups=algo.student_groups(t))
            outs[tprd] = algo.compute_distill_losses(s, t, data['data_samples'])
            if tprd:
                ref = algo.teacher_targets(t.cls_logits, t.bbox_preds, data['data_samples'])
                manual = KDDETRLoss(loss_cls_weight=2.0)(
                    s.cls_logits[-1], s.bbox_preds[-1], ref.logits[-1], ref.boxes[-1],
                    s.img_size_factors(), ref.pos_labels[-1])
                for k in ('loss_cls', 'loss_bbox', 'loss_iou'):
                    torch.testing.assert_close(outs[True][f'{k}_specific'], manual[k])
                assert ref.pos_mask.any()
    assert all(abs(float(v)) < 1e-4 for v in outs[False].values())
    assert not set(outs[True]) - set(outs[False])


def test_kd_detr_loss_weighting():
    """Foreground re-weighting normalised per image, averaged over images; T^2-scaled KL."""
    torch.manual_seed(0)
    zs, zt = torch.randn(2, 4, 3), torch.randn(2, 4, 3)
    bs, bt = torch.rand(2, 4, 4) * 0.3 + 0.2, torch.rand(2, 4, 4) * 0.3 + 0.2
    f = torch.tensor([[100., 50., 100., 50.]] * 2)
    out = KDDETRLoss(temperature=2.0, loss_cls_weight=1.0, loss_bbox_weight=1.0,
                     loss_iou_weight=1.0)(zs, bs, zt, bt, f)
    w = zt.max(-1).values.sigmoid()
    w = w / w.sum(1, keepdim=True)
    kl = (torch.softmax(zt / 2, -1) * (torch.log_softmax(zt / 2, -1) -
                                       torch.log_softmax(zs / 2, -1))).sum(-1) * 4
    torch.testing.assert_close(out['loss_cls'], (w * kl).sum() / 2)
    torch.testing.assert_close(out['loss_bbox'], (w * (bs - bt).abs().sum(-1)).sum() / 2)
    with pytest.raises(ValueError, match='index-aligned'):
        KDDETRLoss()(zs, bs, zt[:, :3], bt, f)


def test_config_errors_and_init_from_teacher(toy_data_root):
    cfg = _cfg('deformable', toy_data_root)
    algo = build_toy_model(cfg)
    assert algo.layer_by_layer is True  # TPRD release: student layer i <- teacher layer i
    torch.testing.assert_close(algo.student.level_embed, algo.teacher.level_embed)
    bad = _cfg('deformable', toy_data_root)
    bad.model.distiller.distill_losses = dict(loss_other=dict(type='KDDETRLoss'))
    with pytest.raises(ValueError, match='loss_general'):
        build_toy_model(bad)
    bad = _cfg('deformable', toy_data_root, init_student_from_teacher=['no_such_param'])
    with pytest.raises(ValueError, match='no teacher parameter matches'):
        build_toy_model(bad)
    mixed = _cfg('deformable', toy_data_root, init_student_from_teacher=[])
    mixed.model.teacher = copy.deepcopy(load_toy_config(CFG['dab']).model.teacher)
    algo = build_toy_model(mixed)
    data = toy_inputs(algo, mixed, toy_data_root)
    with pytest.raises(ValueError, match='same DETR variant'):
        algo.loss(data['inputs'], data['data_samples'])


def _hand_built(L, B=2, N=5, C=3, D=8, seed=0):
    """Internals with distinct predictions in every layer and a "specific" group of the same
    shape (single-stage Deformable DETR decoder inputs, so the query kinds agree)."""
    from mmdet_ksdetr.distill.core import DecodedGroup, DETRInternals
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(L, B, N, C, generator=g) * 3
    boxes = torch.rand(L, B, N, 2, generator=g) * 0.5 + 0.25
    boxes = torch.cat([boxes, torch.rand(L, B, N, 2, generator=g) * 0.3 + 0.1], -1)
    hs = torch.zeros(L, B, N, D)
    inputs = dict(memory=torch.zeros(B, 4, D), reference_points=torch.zeros(B, N, 2),
                  query_pos=torch.zeros(B, N, D))
    return DETRInternals(
        cls_logits=logits, bbox_preds=boxes, hidden_states=hs, queries=None, query_pos=None,
        reference_points=None, neck_feats=(), memory=None, memory_mask=None,
        img_shapes=((32, 48),) * B, batch_input_shape=(32, 48), decoder_inputs=inputs,
        groups=dict(specific=DecodedGroup(None, logits, boxes, hs)))


@pytest.mark.parametrize('layer_by_layer', [True, False])
def test_layer_pairing_pinned(toy_data_root, layer_by_layer):
    """Hand-built predictions: layer_by_layer=True (the TPRD release) distils student layer i
    from teacher layer i, False (KD-DETR paper code) every layer from the teacher's last."""
    algo = build_toy_model(_cfg('deformable', toy_data_root, layer_by_layer=layer_by_layer))
    algo.distiller.distill_losses.pop('loss_general')
    algo.losses.pop('loss_general')
    s, t = _hand_built(3, seed=0), _hand_built(3, seed=1)
    out = algo.compute_distill_losses(s, t, [])
    loss_fn, f = algo.losses['loss_specific'], s.img_size_factors()
    for l, prefix in enumerate(('d0.', 'd1.', '')):
        tl = l if layer_by_layer else 2
        want = loss_fn(s.cls_logits[l], s.bbox_preds[l], t.cls_logits[tl], t.bbox_preds[tl], f)
        other = loss_fn(s.cls_logits[l], s.bbox_preds[l], t.cls_logits[1 - tl % 2],
                        t.bbox_preds[1 - tl % 2], f)
        for k in ('loss_cls', 'loss_bbox', 'loss_iou'):
            torch.testing.assert_close(out[f'{prefix}{k}_specific'], want[k])
            assert not torch.allclose(out[f'{prefix}{k}_specific'], other[k])


def test_tprd_release_configs_pair_layer_by_layer():
    """Every shipped and toy KD-DETR config (all follow the TPRD release) pairs layer i with
    layer i."""
    import glob
    import os.path as osp
    from toy_helpers import CONFIGS
    paths = sorted(glob.glob(osp.join(CONFIGS, 'kd_detr', '*.py')) +
                   glob.glob(osp.join(CONFIGS, 'toy', 'kd_detr', '*.py')))
    assert len(paths) >= 14
    for p in paths:
        cfg = load_toy_config(osp.relpath(p, CONFIGS))
        assert cfg.model.layer_by_layer is True, p
