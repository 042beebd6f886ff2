"""DETRDistill / DETRDistillBase: frozen deterministic teacher, strict teacher checkpoint,
one training step, different query / layer counts, teacher group, other DETR variants."""
import copy
from contextlib import nullcontext

import pytest
import torch
from mmengine.optim import build_optim_wrapper
from mmrazor.registry import MODELS
from toy_helpers import build_toy_model, load_toy_config, toy_batch, toy_config, toy_inputs

from mmdet_ksdetr.distill.detr_distill.detr_distill import DETRDistill, teacher_layer_map
from mmdet_ksdetr.distill.core.detr_distill_base import TeacherCheckpointError
from mmdet_ksdetr.distill.core import decoder_inputs_for, get_detr_internals, own_queries_group

CFG = 'toy/detr_distill/detr-distill_deformable-detr_tiny-r18_1xb2-12e_toy.py'
TOY = {
    'conditional': 'toy/conditional-detr_tiny-r18_1xb2-12e_toy.py',
    'dab': 'toy/dab-detr_tiny-r18_1xb2-12e_toy.py',
    'dino': 'toy/dino-4scale_tiny-r18_1xb2-12e_toy.py',
    'detr': 'toy/detr_tiny-r18_1xb2-12e_toy.py',
}


def _cfg(data_root, student=None, teacher=None, **algo):
    cfg = toy_config(CFG, data_root, replace=True, teacher_ckpt=None, **algo)
    if student:
        cfg.model.architecture.update(student)
    if teacher:
        cfg.model.teacher.update(teacher)
    return cfg


def _build(cfg, seed=0):
    """:func:`build_toy_model`, asserting the warning of a distiller without teacher_ckpt."""
    with pytest.warns(UserWarning, match='no teacher_ckpt') if not cfg.model.teacher_ckpt \
            else nullcontext():
        return build_toy_model(cfg, seed, quiet=False)


def _variant_cfg(data_root, name, **student_overrides):
    """A DETRDistill config whose student and teacher are the toy `name` detector."""
    cfg = _cfg(data_root)
    det = load_toy_config(TOY[name], data_root).model
    det['_scope_'] = 'mmdet'
    cfg.model.architecture = dict(copy.deepcopy(det), **student_overrides)
    cfg.model.teacher = copy.deepcopy(det)
    return cfg


def test_teacher_layer_map():
    assert teacher_layer_map(6, 6) == list(range(6))
    assert teacher_layer_map(2, 6) == [2, 5]
    assert teacher_layer_map(3, 2) == [0, 0, 1]
    assert teacher_layer_map(4, 4, layer_by_layer=False) == [3, 3, 3, 3]
    with pytest.raises(ValueError):
        teacher_layer_map(0, 3)


def test_teacher_checkpoint_strict_loading_and_key_report(toy_data_root, tmp_path):
    cfg = _cfg(toy_data_root)
    algo = _build(cfg)
    good = {k: v.clone() + 0.5 for k, v in algo.teacher.state_dict().items()
            if v.is_floating_point()}
    good.update({k: v for k, v in algo.teacher.state_dict().items()
                 if not v.is_floating_point()})
    path = tmp_path / 'teacher.pth'
    torch.save(dict(meta=dict(epoch=3), state_dict=good), path)
    cfg.model.teacher_ckpt = str(path)
    loaded = _build(cfg, seed=1)
    for k, v in loaded.teacher.state_dict().items():
        assert torch.equal(v, good[k]), k  # init_weights() did not overwrite the teacher
    assert loaded.teacher.is_init

    bad = dict(good)
    bad['encoder.layers.0.renamed.weight'] = bad.pop('encoder.layers.0.ffn.layers.1.weight')
    del bad['query_embedding.weight']
    bad['bbox_head.cls_branches.0.weight'] = torch.zeros(7, 256)
    torch.save(dict(state_dict=bad), tmp_path / 'bad.pth')
    cfg.model.teacher_ckpt = str(tmp_path / 'bad.pth')
    with pytest.raises(TeacherCheckpointError) as err:
        MODELS.build(cfg.model)
    msg = str(err.value)
    assert '2 missing keys' in msg and 'query_embedding.weight' in msg
    assert 'encoder.layers.0.ffn.layers.1.weight' in msg
    assert '1 unexpected keys' in msg and 'encoder.layers.0.renamed.weight' in msg
    assert 'bbox_head.cls_branches.0.weight (7, 256)' in msg

    # non-strict: extra keys only warn, missing parameters still stop
    extra = dict(good, **{'distiller.x': torch.zeros(1)})
    torch.save(dict(state_dict=extra), tmp_path / 'extra.pth')
    cfg.model.teacher_ckpt = str(tmp_path / 'extra.pth')
    cfg.model.teacher_strict = False
    with pytest.warns(UserWarning, match='unexpected keys'):
        MODELS.build(cfg.model)
    cfg.model.teacher_ckpt = str(tmp_path / 'bad.pth')
    with pytest.raises(TeacherCheckpointError, match='missing keys'):
        MODELS.build(cfg.model)


def test_training_step_teacher_frozen_and_deterministic(toy_data_root):
    cfg = _cfg(toy_data_root)
    algo = _build(cfg)
    optim = build_optim_wrapper(algo, cfg.optim_wrapper)
    algo.train()
    assert not algo.teacher.training and not any(m.training for m in algo.teacher.modules())
    assert algo.student.training
    data = toy_inputs(algo, cfg, toy_data_root)
    t1 = algo.teacher_forward(data['inputs'], data['data_samples'])
    t2 = algo.teacher_forward(data['inputs'], data['data_samples'])
    assert torch.equal(t1.cls_logits, t2.cls_logits) and torch.equal(t1.bbox_preds,
                                                                     t2.bbox_preds)
    assert not t1.cls_logits.requires_grad
    # the check is meaningful: this teacher config has active dropout in train mode
    algo.teacher.train()
    with torch.no_grad():
        a = get_detr_internals(algo.teacher, data['inputs'], data['data_samples'])
        b = get_detr_internals(algo.teacher, data['inputs'], data['data_samples'])
    assert not torch.equal(a.hidden_states, b.hidden_states)
    algo.train()

    teacher_before = {k: v.clone() for k, v in algo.teacher.state_dict().items()}
    student_before = {k: v.clone() for k, v in algo.student.state_dict().items()}
    batch = toy_batch(cfg, toy_data_root, 'train', 2)
    log_vars = algo.train_step(batch, optim)
    assert any(k.startswith('student.') for k in log_vars)
    for key in ('distill.loss_cls_kd', 'distill.d0.loss_bbox_kd', 'distill.loss_feat_kd',
                'distill.loss_cl_kd', 'distill.teacher_group.loss_cls'):
        assert key in log_vars and torch.isfinite(torch.as_tensor(log_vars[key])), key
    assert all(p.grad is None and not p.requires_grad for p in algo.teacher.parameters())
    teacher_ids = {id(p) for p in algo.teacher.parameters()}
    state = optim.optimizer.state
    assert state and not any(id(p) in teacher_ids for p in state)
    cl = algo.distiller.distill_losses['loss_cl_kd']
    assert all(p in state for p in cl.student_proj.parameters())
    for k, v in algo.teacher.state_dict().items():
        assert torch.equal(v, teacher_before[k]), k
    assert any(not torch.equal(v, student_before[k])
               for k, v in algo.student.state_dict().items())
    # predict / val runs the student only
    algo.eval()
    val = toy_inputs(algo, cfg, toy_data_root, 'val')
    with torch.no_grad():
        out = algo(val['inputs'], val['data_samples'], mode='predict')
        ref = algo.student.predict(val['inputs'], val['data_samples'])
    torch.testing.assert_close(out[0].pred_instances.bboxes, ref[0].pred_instances.bboxes)


@pytest.mark.parametrize('student,teacher,algo_kw', [
    (dict(num_queries=20), dict(num_queries=30,
                                decoder=dict(num_layers=3)), dict()),
    (dict(num_queries=30, decoder=dict(num_layers=3)), dict(num_queries=20), dict(
        layer_by_layer=False)),
])
def test_different_query_and_layer_counts(toy_data_root, student, teacher, algo_kw):
    cfg = _cfg(toy_data_root, student, teacher, **algo_kw)
    cfg.model.distiller.distill_losses.loss_teacher_group.assignment = 'teacher'
    algo = _build(cfg)
    algo.train()
    data = toy_inputs(algo, cfg, toy_data_root)
    losses = algo.loss(data['inputs'], data['data_samples'])
    ls = cfg.model.architecture.decoder.num_layers
    for l in range(ls - 1):
        assert f'distill.d{l}.loss_cls_kd' in losses
        assert f'distill.teacher_group.d{l}.loss_cls' in losses
    assert f'distill.d{ls - 1}.loss_cls_kd' not in losses
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    assert algo.student.query_embedding.weight.grad is not None


def test_teacher_group_with_identical_teacher_reproduces_student(toy_data_root):
    """Teacher = student weights: the teacher group is the student's own decoder pass."""
    cfg = _cfg(toy_data_root, dict(num_queries=30))
    algo = _build(cfg)
    algo.teacher.load_state_dict(algo.student.state_dict())
    algo.eval()
    data = toy_inputs(algo, cfg, toy_data_root)
    with torch.no_grad():
        s = get_detr_internals(algo.student, data['inputs'], data['data_samples'])
        t = algo.teacher_forward(data['inputs'], data['data_samples'])
        inputs = decoder_inputs_for(algo.student, s.decoder_inputs,
                                    own_queries_group('teacher_group', t))
        out = algo.student.forward_decoder(**inputs)
    torch.testing.assert_close(out['hidden_states'], s.hidden_states)
    torch.testing.assert_close(t.cls_logits, s.cls_logits)


def test_layer_batched_feature_and_contrast_losses_equal_per_layer_calls(toy_data_root):
    """The feature and CL losses are computed for all layers in one call each; the values
    equal one call per student layer on that layer's teacher targets and matched pairs."""
    cfg = _cfg(toy_data_root, dict(num_queries=20), dict(decoder=dict(num_layers=3)))
    algo = _build(cfg)
    algo.train()
    data = toy_inputs(algo, cfg, toy_data_root)
    samples = data['data_samples']
    t = algo.teacher_forward(data['inputs'], samples)
    _, s = algo.student_forward(data['inputs'], samples, t)
    contrast = algo.distiller.distill_losses['loss_cl_kd']
    reference_contrast = copy.deepcopy(contrast)  # its BN statistics move with every call
    losses = algo.compute_distill_losses(s, t, samples)
    layers = teacher_layer_map(s.num_layers, t.num_layers)
    assert layers == [1, 2]
    factors = s.img_size_factors()
    from mmdet.structures.bbox import bbox_xyxy_to_cxcywh
    t_boxes = bbox_xyxy_to_cxcywh(t.bboxes_xyxy(clamp=True)) / factors[None, :, None, :]
    s_idx, t_idx = algo.matcher.match(s.cls_logits.detach(), s.bbox_preds.detach(),
                                      t.scores()[layers], t_boxes[layers],
                                      factors.expand(s.num_layers, -1, -1))
    feat = algo.distiller.distill_losses['loss_feat_kd']
    gts = [d.gt_instances.bboxes for d in samples]
    for l, tl in enumerate(layers):
        prefix = '' if l == s.num_layers - 1 else f'd{l}.'
        ref_feat = feat(s.neck_feats, t.neck_feats, t.hidden_states[tl], t.scores()[tl],
                        t.bboxes_xyxy()[tl], gts)
        torch.testing.assert_close(losses[prefix + 'loss_feat_kd'], ref_feat)
        s_q = torch.stack([s.hidden_states[l, b, s_idx[l, b]] for b in range(2)]).flatten(0, 1)
        t_q = torch.stack([t.hidden_states[tl, b, t_idx[l, b]] for b in range(2)]).flatten(0, 1)
        torch.testing.assert_close(losses[prefix + 'loss_cl_kd'],
                                   reference_contrast(s_q, t_q))


@pytest.mark.parametrize('name', ['conditional', 'dab', 'dino'])
def test_other_detr_variants_one_step(toy_data_root, name):
    cfg = _variant_cfg(toy_data_root, name, num_queries=20)
    algo = _build(cfg)
    algo.train()
    data = toy_inputs(algo, cfg, toy_data_root)
    losses = algo.loss(data['inputs'], data['data_samples'])
    for key in ('distill.loss_cls_kd', 'distill.loss_feat_kd', 'distill.loss_cl_kd',
                'distill.teacher_group.loss_cls', 'student.loss_cls'):
        assert key in losses and torch.isfinite(losses[key]), key
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    assert all(p.grad is None for p in algo.teacher.parameters())


def test_bad_setups_raise_clear_errors(toy_data_root):
    with pytest.raises(ValueError, match='sigmoid classification'):
        _build(_variant_cfg(toy_data_root, 'detr'))
    cfg = _cfg(toy_data_root, teacher=dict(bbox_head=dict(num_classes=5)))
    with pytest.raises(ValueError, match='same classes'):
        _build(cfg)
    cfg = _cfg(toy_data_root)
    cfg.model.distiller.distill_losses.loss_other = dict(type='L2Loss')
    with pytest.raises(ValueError, match='unknown distill loss "loss_other"'):
        _build(cfg)
    cfg = _cfg(toy_data_root)  # losses are bound by name: the class must fit the name
    cfg.model.distiller.distill_losses.loss_feat_kd = dict(type='L2Loss')
    with pytest.raises(TypeError, match='"loss_feat_kd" must be a TargetAwareFeatLoss'):
        _build(cfg)
    cfg = _cfg(toy_data_root, teacher_trainable=True)
    with pytest.raises(ValueError, match='frozen'):
        MODELS.build(cfg.model)
    assert isinstance(_build(_cfg(toy_data_root)), DETRDistill)
