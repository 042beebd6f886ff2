"""KS-DETR detectors (DAB, Conditional, Deformable, DN, DN-Deformable) on tiny toy models:
teacher groups and loss keys, equivalence with the stock detector after dropping the teacher
parameters, images without boxes, gradient flow into the student's projections, bad input."""
import copy
from functools import partial
from types import SimpleNamespace

import pytest
import torch
from mmdet.registry import DATASETS
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData
from toy_helpers import build_toy, load_toy_config, toy_inputs

from mmdet_ksdetr.models.common import detr_stages
import mmdet_ksdetr.models.ks_detr.ks_detr_mixin as ks_mixin
from mmdet_ksdetr.models.ks_detr.ks_detr_mixin import is_ks_teacher_key, ks_student_state_dict
from mmdet_ksdetr.engine.hooks.ks_gt_check_hook import KSCheckTrainGTHook

PAIRS = {
    'dab': ('toy/ks_detr/ks-dab-detr_tiny-r18_1xb2-12e_toy.py',
            'toy/dab-detr_tiny-r18_1xb2-12e_toy.py'),
    'conditional': ('toy/ks_detr/ks-conditional-detr_tiny-r18_1xb2-12e_toy.py',
                    'toy/conditional-detr_tiny-r18_1xb2-12e_toy.py'),
    'deformable': ('toy/ks_detr/ks-deformable-detr_tiny-r18_1xb2-12e_toy.py',
                   'toy/deformable-detr_tiny-r18_1xb2-12e_toy.py'),
    'dn': ('toy/ks_detr/ks-dn-detr_tiny-r18_1xb2-12e_toy.py',
           'toy/dn-detr_tiny-r18_1xb2-12e_toy.py'),
    'dn_deformable': ('toy/ks_detr/ks-dn-deformable-detr_tiny-r18_1xb2-12e_toy.py',
                      'toy/dn-deformable-detr_tiny-r18_1xb2-12e_toy.py'),
}
DEFORMABLE = {'deformable', 'dn_deformable'}
DN = {'dn', 'dn_deformable'}


_build = partial(build_toy, quiet=False)  # (cfg, model), the build-time warnings shown


def _total(losses, prefix=None):
    return sum(v.sum() for k, v in losses.items()
               if 'loss' in k and (prefix is None or k.startswith(prefix)))


@pytest.mark.parametrize('name', sorted(PAIRS))
def test_predict_equals_stock_detector_without_teacher_params(name, toy_data_root,
                                                              monkeypatch):
    ks_path, base_path = PAIRS[name]
    cfg, ks = _build(ks_path, toy_data_root)
    with torch.no_grad():  # move every weight away from its (partly zero) init
        g = torch.Generator().manual_seed(1)
        for p in ks.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=g))
    state = ks.state_dict()
    teacher_keys = [k for k in state if is_ks_teacher_key(k)]
    assert teacher_keys and all('encoder.layers.0.' in k for k in teacher_keys)
    base_cfg, base = _build(base_path, toy_data_root, seed=1)
    assert type(base).__name__ == type(ks).__name__[2:]  # KSDABDETR -> DABDETR ...
    base.load_state_dict(ks_student_state_dict(state), strict=True)

    data = toy_inputs(ks, cfg, toy_data_root, 'val', n=2)
    assert data['inputs'].shape[-2:] != tuple(data['data_samples'][0].img_shape) or \
        data['data_samples'][0].img_shape != data['data_samples'][1].img_shape  # padding
    for s in data['data_samples']:  # predict() must not need GT
        del s.gt_instances

    def no_mask(*args, **kwargs):
        raise AssertionError('predict() built the GT mask')

    monkeypatch.setattr(ks_mixin, 'gt_foreground_token_mask', no_mask)
    ks.eval(), base.eval()
    with torch.no_grad():
        got = ks.predict(data['inputs'], copy.deepcopy(data['data_samples']))
        ref = base.predict(data['inputs'], copy.deepcopy(data['data_samples']))
    for a, b in zip(got, ref):
        a, b = a.pred_instances, b.pred_instances
        assert len(a.scores) > 0
        torch.testing.assert_close(a.bboxes, b.bboxes, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(a.scores, b.scores, atol=1e-5, rtol=1e-5)
        assert torch.equal(a.labels, b.labels)


@pytest.mark.parametrize('name', sorted(PAIRS))
def test_loss_has_one_group_per_student_layer_and_teacher(name, toy_data_root):
    cfg, model = _build(PAIRS[name][0], toy_data_root)
    model.train()
    data = toy_inputs(model, cfg, toy_data_root)
    losses = model.loss(data['inputs'], data['data_samples'])
    kinds = ['loss_cls', 'loss_bbox', 'loss_iou'] + (
        ['dn_loss_cls', 'dn_loss_bbox', 'dn_loss_iou'] if name in DN else [])
    groups = ['', 'd0.', 'ks_share_v.', 'ks_share_a.']  # 2 decoder layers + 2 teachers
    assert set(losses) == {g + k for g in groups for k in kinds}
    for v in losses.values():
        assert torch.isfinite(v).all()
    # the teacher groups are predictions of their own (not copies of the student's)
    assert not torch.allclose(losses['ks_share_v.loss_cls'], losses['loss_cls'])


@pytest.mark.parametrize('name', ['dab', 'deformable'])
def test_six_decoder_layers_give_eight_groups(name, toy_data_root):
    cfg, model = _build(PAIRS[name][0], toy_data_root, decoder=dict(num_layers=6))
    model.train()
    data = toy_inputs(model, cfg, toy_data_root)
    head_in = detr_stages.forward_transformer(
        model, model.extract_feat(data['inputs']), data['data_samples'], for_loss=True)
    # 6 student layers + 2 teacher groups of one layer each
    assert head_in['hidden_states'].shape[0] == 6
    assert sorted(head_in['ks_teacher_hidden_states']) == ['ks_share_a', 'ks_share_v']
    assert sorted(head_in['ks_teacher_references']) == ['ks_share_a', 'ks_share_v']
    assert all(h.shape[0] == 1 for h in head_in['ks_teacher_hidden_states'].values())
    losses = model.loss(data['inputs'], data['data_samples'])
    prefixes = {k.rsplit('loss_', 1)[0] for k in losses}
    assert prefixes == {'', 'd0.', 'd1.', 'd2.', 'd3.', 'd4.', 'ks_share_v.', 'ks_share_a.'}


@pytest.mark.parametrize('name', sorted(PAIRS))
def test_images_without_boxes_train(name, toy_data_root):
    cfg, model = _build(PAIRS[name][0], toy_data_root)
    model.train()
    data = toy_inputs(model, cfg, toy_data_root)
    for mixed in (True, False):  # one image without boxes, then none with boxes
        samples = copy.deepcopy(data['data_samples'])
        for s in samples[int(mixed):]:
            s.gt_instances = InstanceData(bboxes=torch.zeros(0, 4),
                                          labels=torch.zeros(0, dtype=torch.long))
        model.zero_grad()
        losses = model.loss(data['inputs'], samples)
        total = _total(losses)
        assert torch.isfinite(total)
        total.backward()
        for n, p in model.named_parameters():
            if p.grad is not None:
                assert torch.isfinite(p.grad).all(), n


def _student_projection_grads(model, name):
    attn = model.encoder.layers[-1].self_attn
    if name in DEFORMABLE:
        return dict(v=attn.value_proj.weight.grad, a=attn.attention_weights.weight.grad,
                    s=attn.sampling_offsets.weight.grad)
    w, e = attn.attn.in_proj_weight.grad, attn.embed_dims
    return dict(q=w[:e], k=w[e:2 * e], v=w[2 * e:])


@pytest.mark.parametrize('name', sorted(PAIRS))
def test_teacher_losses_train_the_student_projections(name, toy_data_root):
    """Loss of the A^t V stream alone -> the student's value projection learns; loss of the
    A V^t stream alone -> the student's Q / K (deformable: attention weights) learn."""
    cfg, model = _build(PAIRS[name][0], toy_data_root)
    model.train()
    data = toy_inputs(model, cfg, toy_data_root)
    model.zero_grad()
    _total(model.loss(data['inputs'], data['data_samples']), 'ks_share_v.').backward()
    g = _student_projection_grads(model, name)
    assert g['v'].abs().sum() > 0
    model.zero_grad()
    _total(model.loss(data['inputs'], data['data_samples']), 'ks_share_a.').backward()
    g = _student_projection_grads(model, name)
    if name in DEFORMABLE:
        assert g['a'].abs().sum() > 0 and g['s'].abs().sum() > 0
    else:
        assert g['q'].abs().sum() > 0 and g['k'].abs().sum() > 0


def test_dual_attention_modes(toy_data_root):
    for mode, streams in (('dual_share_v', ['ks_share_v.']), ('dual_share_a', ['ks_share_a.'])):
        cfg, model = _build(PAIRS['dab'][0], toy_data_root, ks_cfg=dict(mode=mode))
        model.train()
        data = toy_inputs(model, cfg, toy_data_root)
        losses = model.loss(data['inputs'], data['data_samples'])
        assert {k.rsplit('loss_', 1)[0] for k in losses} == {'', 'd0.', *streams}
    cfg, model = _build(PAIRS['dab'][0], toy_data_root,
                        ks_cfg=dict(teacher_input=dict(_delete_=True, type='KSMarkFg')))
    assert not [k for k in model.state_dict() if 'teacher_input' in k]


# ---------------------------------------------------------------------------- bad input
def test_non_ks_head_is_rejected(toy_data_root):
    with pytest.raises(ValueError, match='KSDABDETRHead'):
        _build(PAIRS['dab'][0], toy_data_root, bbox_head=dict(type='DABDETRHead'))


def test_mismatched_embed_dims_fail_at_build(toy_data_root):
    with pytest.raises(ValueError, match='decoder.layer_cfg.ffn_cfg.embed_dims=128'):
        _build(PAIRS['deformable'][0], toy_data_root,
               decoder=dict(layer_cfg=dict(ffn_cfg=dict(embed_dims=128))))
    with pytest.raises(ValueError, match='ks_cfg.teacher_input.embed_dims=64'):
        _build(PAIRS['dab'][0], toy_data_root,
               ks_cfg=dict(teacher_input=dict(type='KSSMLP', embed_dims=64)))


def test_two_stage_is_rejected(toy_data_root):
    with pytest.raises(ValueError, match='two-stage'):
        _build(PAIRS['deformable'][0], toy_data_root, as_two_stage=True, with_box_refine=True)


def test_pipeline_without_gt_boxes_fails_before_training(toy_data_root):
    cfg = load_toy_config(PAIRS['dab'][0], toy_data_root)
    assert dict(type='KSCheckTrainGTHook') in cfg.custom_hooks
    pipeline = [t for t in cfg.train_dataloader.dataset.pipeline
                if t['type'] != 'LoadAnnotations']
    init_default_scope('mmdet')
    bad = DATASETS.build(dict(cfg.train_dataloader.dataset, pipeline=pipeline))
    good = DATASETS.build(cfg.train_dataloader.dataset)
    hook = KSCheckTrainGTHook()
    hook.before_train(SimpleNamespace(train_dataloader=SimpleNamespace(dataset=good)))
    with pytest.raises(ValueError, match="LoadAnnotations', with_bbox=True"):
        hook.before_train(SimpleNamespace(train_dataloader=SimpleNamespace(dataset=bad)))
    # and the detector itself refuses a batch without GT boxes
    _, model = _build(PAIRS['dab'][0], toy_data_root)
    data = toy_inputs(model, cfg, toy_data_root)
    for s in data['data_samples']:
        del s.gt_instances
    with pytest.raises(ValueError, match='LoadAnnotations'):
        model.loss(data['inputs'], data['data_samples'])
