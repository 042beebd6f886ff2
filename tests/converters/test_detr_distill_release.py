"""The DETRDistill release (mmdet 2.x Deformable DETR R-101 teacher) -> mmdet 3.x DeformableDETR.

The release's full key set (names, shapes, dtypes, tied keys) is the fixture
``tests/data/releases/detr_distill_r101_teacher_keys.json``; values are seeded random. mmdet 2.x
cannot be installed beside 3.x, so the mapping is checked module by module against the 2.x
computation written out here, and over the whole model by execution order (see
``test_every_layer_tensor_lands_where_2x_used_it``).
"""
import json
import os.path as osp

import pytest
import torch

from mmdet_ksdetr.converters.release import (ReleaseConversionError, convert_checkpoint,
                                             detect_format, is_release_checkpoint)
from mmdet_ksdetr.utils.checkpoint_io import check_state_dict_fits

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FIXTURE = osp.join(ROOT, 'tests/data/releases/detr_distill_r101_teacher_keys.json')
TEACHER_CFG = osp.join(ROOT, 'configs/detectors/deformable-detr_r101_16xb2-50e_coco.py')
T = 'bbox_head.transformer.'


def release_state(seed=0):
    """The release teacher's state dict with seeded random values (tied keys share a tensor,
    as mmdet 2.x saves a module repeated in a ModuleList)."""
    spec = json.load(open(FIXTURE))
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, (shape, dtype) in spec['keys'].items():
        if dtype == 'int64':
            state[key] = torch.zeros(shape, dtype=torch.int64)
        elif key.endswith('running_var'):
            state[key] = torch.rand(shape, generator=g) + 0.5
        else:
            state[key] = torch.randn(shape, generator=g) * 0.2
    for group in spec['tied']:
        for key in group[1:]:
            state[key] = state[group[0]]
    return state


def load_cfg(**model):
    from mmengine.config import Config
    cfg = Config.fromfile(TEACHER_CFG)
    cfg.model.backbone.init_cfg = None
    cfg.model.update(model)
    return cfg


@pytest.fixture(scope='module')
def converted():
    """(release state, converted mmdet 3.x model in eval mode, a 64x80 batch)."""
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    cfg = load_cfg()
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).eval()
    release = release_state()
    ckpt = convert_checkpoint(dict(state_dict=release, meta={}), cfg=cfg)
    check_state_dict_fits(model, ckpt['state_dict'], source='converted release')
    model.load_state_dict(ckpt['state_dict'], strict=True)
    g = torch.Generator().manual_seed(1)
    inputs = torch.randn(1, 3, 64, 80, generator=g)
    sample = DetDataSample(metainfo=dict(img_shape=(60, 80), batch_input_shape=(64, 80),
                                         ori_shape=(60, 80), scale_factor=(1.0, 1.0),
                                         pad_shape=(64, 80)))
    return release, model, inputs, [sample]


def test_fixture_is_detected_as_detr_distill():
    release = release_state()
    assert detect_format(release) == 'detr-distill'
    assert is_release_checkpoint(dict(state_dict=release, meta=dict(epoch=50)))


def test_converts_loads_strictly_and_predicts(converted):
    release, model, inputs, samples = converted
    report = []
    ckpt = convert_checkpoint(dict(state_dict=release), cfg=load_cfg(), report=report)
    assert ckpt['meta']['release_source'] == 'detr-distill'
    assert report[0].architecture == 'Deformable DETR R-101'
    assert report[0].mapped == len(release) == len(model.state_dict())
    assert all(ckpt['state_dict'][k].data_ptr() == v.data_ptr() for k, v in
               zip(_renamed(release), release.values()))  # renamed, never copied
    with torch.no_grad():
        results = model.predict(inputs, samples)
        cls, boxes = model(inputs, samples, mode='tensor')
    assert results[0].pred_instances.bboxes.shape == (100, 4)
    assert cls.shape == (6, 1, 300, 80) and boxes.shape == (6, 1, 300, 4)
    assert torch.isfinite(cls).all() and torch.isfinite(boxes).all()


def _renamed(release):
    from mmdet_ksdetr.converters.release.detr_distill import _new_name
    return [_new_name(k) for k in release]


def test_every_layer_tensor_lands_where_2x_used_it(converted):
    """Whole model: a forward records the order in which each 3.x encoder / decoder layer calls
    its attentions, FFN and norms; the 2.x config's ``operation_order`` says which 2.x module
    (``attentions.a`` / ``ffns.0`` / ``norms.k``) runs at each step. Every tensor of the 3.x
    module called at step p must be the release tensor of the 2.x module of step p."""
    release, model, inputs, samples = converted
    order = json.load(open(FIXTURE))['operation_order']
    calls, handles = {}, []
    for part in ('encoder', 'decoder'):
        for i, layer in enumerate(getattr(model, part).layers):
            for name, mod in layer.named_modules():
                if name in ('self_attn', 'cross_attn', 'ffn') or name.startswith('norms.') \
                        and name.count('.') == 1:
                    handles.append(mod.register_forward_hook(
                        lambda m, a, o, key=(part, i), n=name: calls.setdefault(key, []).append(n)))
    with torch.no_grad():
        model(inputs, samples, mode='tensor')
    for h in handles:
        h.remove()
    checked = 0
    for (part, i), called in calls.items():
        assert len(called) == len(order[part]), (part, i, called)
        n_attn = n_norm = 0
        for op, new_name in zip(order[part], called):
            if op == 'norm':
                old, n_norm = f'norms.{n_norm}', n_norm + 1
            elif op == 'ffn':
                old = 'ffns.0'
            else:
                old, n_attn = f'attentions.{n_attn}', n_attn + 1
            module = model.get_submodule(f'{part}.layers.{i}.{new_name}')
            for pname, value in module.state_dict().items():
                assert torch.equal(value, release[f'{T}{part}.layers.{i}.{old}.{pname}']), \
                    (part, i, new_name, pname)
                checked += 1
    assert checked == 6 * 16 + 6 * 22  # every encoder / decoder layer tensor


def test_decoder_self_attention_in_proj(converted):
    """2.x: ``attentions.0`` is mmcv's MultiheadAttention over nn.MultiheadAttention with one
    packed ``in_proj`` (rows q, k, v); q = k = query + query_pos, v = query, plus the identity."""
    release, model, _, _ = converted
    g = torch.Generator().manual_seed(2)
    x, pos = torch.randn(2, 7, 256, generator=g), torch.randn(2, 7, 256, generator=g)
    p = f'{T}decoder.layers.3.attentions.0.attn.'
    w, b = release[p + 'in_proj_weight'], release[p + 'in_proj_bias']
    q = (x + pos) @ w[:256].T + b[:256]
    k = (x + pos) @ w[256:512].T + b[256:512]
    v = x @ w[512:].T + b[512:]

    def heads(t):
        return t.view(2, 7, 8, 32).transpose(1, 2)

    att = torch.softmax(heads(q) @ heads(k).transpose(-1, -2) / 32 ** 0.5, -1) @ heads(v)
    want = x + att.transpose(1, 2).reshape(2, 7, 256) @ release[p + 'out_proj.weight'].T + \
        release[p + 'out_proj.bias']
    with torch.no_grad():
        got = model.decoder.layers[3].self_attn(query=x, key=x, value=x, query_pos=pos,
                                                key_pos=pos)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_level_embeds_reference_points_and_query_split(converted):
    """2.x: ``lvl_pos_embed = pos + level_embeds[lvl]``; ``query_pos, query =
    split(query_embedding, 256)``; ``reference_points = sigmoid(Linear(query_pos))``."""
    release, model, inputs, samples = converted
    with torch.no_grad():
        feats = model.extract_feat(inputs)
        enc_in, dec_in = model.pre_transformer(feats, samples)
        dec_extra = model.pre_decoder(**model.forward_encoder(**enc_in))[0]
    starts = enc_in['level_start_index'].tolist() + [enc_in['feat_pos'].shape[1]]
    masks = torch.zeros(1, 64, 80)
    masks[:, 60:] = 1
    for lvl, feat in enumerate(feats):
        mask = torch.nn.functional.interpolate(masks[None], size=feat.shape[-2:]).bool()[0]
        pos = model.positional_encoding(mask).flatten(2).transpose(1, 2)  # no parameters
        want = pos + release[T + 'level_embeds'][lvl]
        torch.testing.assert_close(enc_in['feat_pos'][:, starts[lvl]:starts[lvl + 1]], want)
    emb = release['bbox_head.query_embedding.weight']
    torch.testing.assert_close(dec_extra['query'][0], emb[:, 256:])
    torch.testing.assert_close(dec_extra['query_pos'][0], emb[:, :256])
    ref = torch.sigmoid(emb[:, :256] @ release[T + 'reference_points.weight'].T +
                        release[T + 'reference_points.bias'])
    torch.testing.assert_close(dec_extra['reference_points'][0], ref)


def test_head_branches(converted):
    """2.x head: layer l's logits = ``cls_branches[l](hs[l])``; boxes = sigmoid(
    ``reg_branches[l](hs[l])`` + inverse_sigmoid(reference) on x, y)."""
    release, model, _, _ = converted
    g = torch.Generator().manual_seed(3)
    hs = torch.randn(6, 1, 5, 256, generator=g)
    refs = torch.rand(7, 1, 5, 2, generator=g) * 0.8 + 0.1
    with torch.no_grad():
        cls, boxes = model.bbox_head(hs, refs)
    for lvl in (0, 5):
        p = f'bbox_head.cls_branches.{lvl}.'
        torch.testing.assert_close(cls[lvl],
                                   hs[lvl] @ release[p + 'weight'].T + release[p + 'bias'])
        r = f'bbox_head.reg_branches.{lvl}.'
        h = torch.relu(hs[lvl] @ release[r + '0.weight'].T + release[r + '0.bias'])
        h = torch.relu(h @ release[r + '2.weight'].T + release[r + '2.bias'])
        tmp = h @ release[r + '4.weight'].T + release[r + '4.bias']
        ref = refs[lvl].clamp(1e-5, 1 - 1e-5)
        tmp[..., :2] += torch.log(ref / (1 - ref))
        torch.testing.assert_close(boxes[lvl], tmp.sigmoid(), rtol=1e-4, atol=1e-5)


def test_distiller_checkpoint_gives_its_student():
    release = release_state()
    state = {f'student.{k}': v for k, v in release.items()}
    state.update({'teacher.bbox_head.query_embedding.weight': torch.zeros(300, 512),
                  'distill_losses.cl_head.fc.weight': torch.zeros(4, 4),
                  'student_neck_convs_0_conv': torch.zeros(1)})
    report = []
    ckpt = convert_checkpoint(dict(state_dict=state), source='detr-distill', report=report)
    assert len(ckpt['state_dict']) == len(release)
    assert sorted(report[0].dropped) == ['distill_losses.cl_head.fc.weight',
                                         'student_neck_convs_0_conv',
                                         'teacher.bbox_head.query_embedding.weight']
    assert 'teacher' in report[0].dropped['teacher.bbox_head.query_embedding.weight']


@pytest.mark.parametrize('change, cfg_model, words', [
    (None, dict(bbox_head=dict(num_classes=20)), 'predicts 80 classes'),
    (None, dict(with_box_refine=True), 'with_box_refine=False'),
    (None, dict(backbone=dict(depth=50)), 'ResNet-101 backbone'),
    (None, dict(num_queries=100), '300 queries'),
    ('drop', None, 'missing'),
    ('foreign', None, 'no mmdet 3.x counterpart'),
    ('shape', None, 'shape'),
])
def test_refuses_in_one_line(change, cfg_model, words):
    state = release_state()
    if change == 'drop':
        del state[f'{T}decoder.layers.2.norms.1.bias']
    elif change == 'foreign':
        state[f'{T}decoder.layers.2.ffns.1.layers.1.bias'] = torch.zeros(256)
    elif change == 'shape':
        state['bbox_head.query_embedding.weight'] = torch.zeros(300, 256)
    with pytest.raises(ReleaseConversionError) as e:
        convert_checkpoint(dict(state_dict=state), cfg=load_cfg(**(cfg_model or {})))
    assert words in str(e.value) and '\n' not in str(e.value)


def test_refuses_another_architecture():
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(ROOT, 'configs/detectors/dino-4scale_r18_8xb2-12e_coco.py'))
    with pytest.raises(ReleaseConversionError, match='config builds a DINO'):
        convert_checkpoint(dict(state_dict=release_state()), cfg=cfg)
