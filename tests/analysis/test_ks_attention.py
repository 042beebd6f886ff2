"""Attention accuracy of KS-DETR (mmdet_ksdetr.analysis.ks_attention) and the
tools/analysis_tools/ks_attention.py tool."""
import json
import os.path as osp

import numpy as np
import pytest
import torch
from output_helpers import assert_one_line_error, run_analysis_tool_in_process
from toy_helpers import CONFIGS, build_toy, run_tool, toy_data_cfg_options, toy_inputs

from mmdet_ksdetr.analysis import ks_attention as ksa
from mmdet_ksdetr.utils.errors import InputError

TOOL = 'tools/analysis_tools/ks_attention.py'
KS_DEF = 'toy/ks_detr/ks-deformable-detr_tiny-r18_1xb2-12e_toy.py'
DEF = 'toy/deformable-detr_tiny-r18_1xb2-12e_toy.py'
KS_DAB = 'toy/ks_detr/ks-dab-detr_tiny-r18_1xb2-12e_toy.py'


def test_dense_accuracy_matches_hand_computation():
    attn = torch.tensor([[[0.5, 0.3, 0.2], [0.1, 0.1, 0.8], [0.6, 0.2, 0.2]]])
    fg = torch.tensor([[True, False, True]])
    mass = ksa.fg_mass_dense(attn, fg)
    assert torch.allclose(mass, torch.tensor([[0.7, 0.9, 0.8]]))
    # foreground queries 0 and 2: (0.7 + 0.8) / 2
    assert ksa.attention_accuracy(mass, fg) == pytest.approx([0.75])
    assert ksa.attention_accuracy(mass, torch.zeros_like(fg)) == [None]
    # per-head maps are averaged over heads
    heads = torch.stack([attn, torch.full_like(attn, 1 / 3)], 1)
    assert torch.allclose(ksa.fg_mass_dense(heads, fg), (mass + 2 / 3) / 2)


def test_deformable_accuracy_matches_hand_computation():
    # one 2 x 2 level, foreground only at token (row 0, col 0); one query, two heads, 3 points
    fg = torch.tensor([[True, False, False, False]])
    locations = torch.tensor([[0.25, 0.25],  # centre of the fg cell: coefficient 1
                              [0.50, 0.25],  # between fg and (0, 1): coefficient 0.5
                              [1.50, 0.50],  # outside the map: reaches no token
                              [0.75, 0.75], [0.75, 0.25], [0.25, 0.75]])  # head 2: background
    locations = locations.view(1, 1, 2, 1, 3, 2)
    weights = torch.tensor([0.5, 0.3, 0.2, 0.6, 0.3, 0.1]).view(1, 1, 2, 1, 3)
    mass = ksa.fg_mass_deformable(weights, locations, fg, [(2, 2)])
    assert mass.item() == pytest.approx((0.5 * 1 + 0.3 * 0.5 + 0.2 * 0 + 0) / 2)
    # per-level split: a second level with all foreground counts its samples fully
    fg2 = torch.tensor([[True, False, False, False, True]])
    loc2 = torch.cat([locations, torch.full_like(locations, 0.5)], 3)
    w2 = torch.cat([weights, weights], 3) / 2
    mass2 = ksa.fg_mass_deformable(w2, loc2, fg2, [(2, 2), (1, 1)])
    assert mass2.item() == pytest.approx(mass.item() / 2 + 0.5)


def test_gt_boxes_are_scaled_when_annotations_load_after_resize():
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    s = DetDataSample(metainfo=dict(scale_factor=(0.5, 2.0)))
    s.gt_instances = InstanceData(bboxes=torch.tensor([[10., 10., 20., 30.]]))
    after = [dict(type='LoadImageFromFile'), dict(type='Resize'), dict(type='LoadAnnotations')]
    before = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'), dict(type='Resize')]
    assert ksa.gt_boxes_in_input_frame(s, after).tolist() == [[5., 20., 10., 60.]]
    assert ksa.gt_boxes_in_input_frame(s, before).tolist() == [[10., 10., 20., 30.]]
    with pytest.raises(InputError, match='LoadAnnotations'):
        ksa.gt_boxes_in_input_frame(s, before[:1])


def test_non_detr_model_is_refused():
    with pytest.raises(InputError, match='not a DETR'):
        ksa.encoder_attention_kind(torch.nn.Linear(2, 2))


def _recorded_streams(rel_cfg, toy_data_root):
    cfg, det = build_toy(rel_cfg, toy_data_root)
    det.eval()
    data = toy_inputs(det, cfg, toy_data_root, split='val', n=2)
    with torch.no_grad(), ksa.record_last_encoder_attention(det) as record:
        feats = det.extract_feat(data['inputs'])
        enc_in, _ = det.pre_transformer(feats, data['data_samples'])
        det.forward_encoder(**enc_in)
    assert not det.encoder.layers[-1].self_attn._forward_pre_hooks  # hooks removed
    n = record.inputs['query'].shape[1]
    fg = torch.zeros(record.inputs['query'].shape[:2], dtype=torch.bool)
    fg[:, :n // 3] = True
    return det, record, fg, ksa.stream_attention(det, record, fg)


def test_dense_recording_is_the_model_attention(toy_data_root):
    det, record, fg, streams = _recorded_streams(KS_DAB, toy_data_root)
    attn = det.encoder.layers[-1].self_attn
    x, pos = record.inputs['query'], record.inputs['query_pos']
    kpm = record.inputs.get('key_padding_mask')
    E, w, b = attn.embed_dims, attn.attn.in_proj_weight, attn.attn.in_proj_bias
    explicit = ksa.dense_attention_map(x, pos, kpm, w[:E], b[:E], w[E:2 * E], b[E:2 * E],
                                       attn.num_heads)
    assert torch.allclose(streams['student']['attn'], explicit, atol=1e-6)
    assert streams['ks_share_a'] is streams['student']
    t = streams['ks_share_v']['attn']
    assert t.shape == explicit.shape and not torch.allclose(t, explicit)
    assert torch.allclose(t.sum(-1), torch.ones(t.shape[:2]), atol=1e-5)


def test_deformable_recording_reproduces_the_attention_output(toy_data_root):
    from mmcv.ops.multi_scale_deform_attn import multi_scale_deformable_attn_pytorch
    det, record, fg, streams = _recorded_streams(KS_DEF, toy_data_root)
    attn = det.encoder.layers[-1].self_attn
    ins = record.inputs
    x = ins['query']
    with torch.no_grad():
        expected = attn(**ins)  # the stock (GT-free) output of the layer
        v = attn.value_proj(x)
        if ins.get('key_padding_mask') is not None:
            v = v.masked_fill(ins['key_padding_mask'][..., None], 0.0)
        s = streams['student']
        out = multi_scale_deformable_attn_pytorch(
            v.view(*x.shape[:2], attn.num_heads, -1), ins['spatial_shapes'], s['locations'],
            s['weights'])
        out = attn.output_proj(out) + x
    assert torch.allclose(out, expected, atol=1e-5)
    t = streams['ks_share_v']
    assert t['locations'] is s['locations'] and not torch.allclose(t['weights'], s['weights'])
    # the teacher weights are those the KS layer uses for its A^t V stream
    with torch.no_grad():
        x_t = det.encoder.layers[-1].teacher_input(x, fg)
        ks_out = attn(**ins, teacher_query=x_t)
        out_t = multi_scale_deformable_attn_pytorch(
            v.view(*x.shape[:2], attn.num_heads, -1), ins['spatial_shapes'], t['locations'],
            t['weights'])
        out_t = attn.output_proj(out_t) + x
    assert torch.allclose(ks_out[0], expected, atol=1e-5)
    assert torch.allclose(ks_out[1], out_t, atol=1e-5)


@pytest.fixture(scope='module')
def tool_run(trained_toy_checkpoint, toy_data_root, tmp_path_factory):
    ks = trained_toy_checkpoint(KS_DEF, iters=4)
    base = trained_toy_checkpoint(DEF, iters=4)
    out = tmp_path_factory.mktemp('ks_attention')
    res = run_tool(['python', TOOL, osp.join(CONFIGS, KS_DEF), ks, '--compare',
                    osp.join(CONFIGS, DEF), base, '--num-images', '4', '--labels', 'KS', 'base',
                    '--out-dir', str(out), '--cfg-options'] +
                   toy_data_cfg_options(toy_data_root))
    assert res.returncode == 0, res.stderr[-3000:]
    return out, ks, base


def test_tool_json_is_consistent(tool_run):
    out, _, _ = tool_run
    d = json.loads((out / 'ks_attention.json').read_text())
    assert d['num_images'] == 4 and [m['label'] for m in d['models']] == ['KS', 'base']
    ks, base = d['models']
    assert list(ks['streams']) == ['student', 'ks_share_v', 'ks_share_a'] and ks['ks']
    assert list(base['streams']) == ['student'] and not base['ks']
    for m in d['models']:
        assert m['attention'] == 'deformable'
        for s in m['streams'].values():
            done = [v for v in s['per_image'] if v is not None]
            assert len(s['per_image']) == 4 and len(done) == m['images_with_foreground'] > 0
            assert s['accuracy'] == pytest.approx(np.mean(done), abs=1e-5)
            assert 0 <= s['accuracy'] <= 1
    assert ks['streams']['ks_share_a']['per_image'] == ks['streams']['student']['per_image']
    levels = d['figure']['levels']
    assert len(levels) == 4 and sum(map(sum, levels[0]['foreground'])) > 0
    for tok in d['figure']['tokens']['KS']:
        h, w = levels[tok['level']]['shape']
        start = sum(a * b for a, b in (lv['shape'] for lv in levels[:tok['level']]))
        r, c = divmod(tok['index'] - start, w)
        assert tok['foreground'] == bool(levels[tok['level']]['foreground'][r][c])
        for name, e in tok['streams'].items():
            samples = np.array(e['samples'])
            assert samples.shape == (8 * 4 * 4, 4)
            assert samples[:, 3].sum() == pytest.approx(1.0, abs=1e-4)
    assert d['figure']['tokens']['KS'][0]['foreground']


def test_tool_figures_are_drawn(tool_run):
    from PIL import Image
    out, _, _ = tool_run
    for name in ('ks_attention_mask.png', 'ks_attention_maps.png',
                 'ks_attention_accuracy.png'):
        with Image.open(out / name) as im:
            arr = np.asarray(im.convert('RGB'))
        assert arr.shape[0] > 100 and arr.std() > 10, name
    # readable sizes: 4 levels of >= 300 px; 2 tokens of >= 330 px plus a colour bar
    with Image.open(out / 'ks_attention_mask.png') as im:
        assert im.size[0] >= 4 * 300 and im.size[1] >= 230, im.size
    with Image.open(out / 'ks_attention_maps.png') as im:
        assert im.size[0] >= 2 * 330 + 60 and im.size[1] >= 3 * 250, im.size


def test_tool_refuses_a_baseline_as_the_ks_model(tool_run, toy_data_root, tmp_path):
    _, _, base = tool_run
    res = run_analysis_tool_in_process(TOOL, [osp.join(CONFIGS, DEF), base, '--out-dir',
                                              str(tmp_path), '--cfg-options'] +
                                       toy_data_cfg_options(toy_data_root))
    assert_one_line_error(res, 'ks_attention.py', 'not a KS-DETR model', '--compare')


def test_tool_refuses_a_mismatching_checkpoint(tool_run, toy_data_root, tmp_path):
    _, _, base = tool_run
    res = run_analysis_tool_in_process(TOOL, [osp.join(CONFIGS, KS_DEF), base, '--out-dir',
                                              str(tmp_path), '--cfg-options'] +
                                       toy_data_cfg_options(toy_data_root))
    assert_one_line_error(res, 'ks_attention.py', 'teacher')
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize('rel_cfg,kind', [(KS_DAB, 'dense'), (KS_DEF, 'deformable')])
def test_figures_have_colour_bar_title_of_their_kind_and_readable_size(
        rel_cfg, kind, toy_data_root, tmp_path, monkeypatch):
    from PIL import Image
    from toy_helpers import save_random_checkpoint

    from mmdet_ksdetr.analysis import common
    ckpt = save_random_checkpoint(rel_cfg, str(tmp_path / 'ks.pth'))
    figs, save = {}, common.save_figure

    def capture(fig, path, dpi=100):
        figs[osp.basename(path)] = fig
        save(fig, path, dpi)

    monkeypatch.setattr(common, 'save_figure', capture)
    out = tmp_path / 'out'
    res = run_analysis_tool_in_process(TOOL, [osp.join(CONFIGS, rel_cfg), ckpt, '--num-images',
                                              '2', '--out-dir', str(out), '--cfg-options'] +
                                       toy_data_cfg_options(toy_data_root))
    assert res.returncode == 0, res.stderr
    tokens = json.loads((out / 'ks_attention.json').read_text())['figure']['tokens']
    ncol = len(next(iter(tokens.values())))
    maps = figs['ks_attention_maps.png']
    # rows student and ks_share_v (ks_share_a shares the student map), one colour bar
    assert len(maps.axes) == 2 * ncol + 1
    bar = maps.axes[-1]
    assert bar.get_ylabel() == ('attention weight' if kind == 'dense' else 'sampling weight')
    title = maps._suptitle.get_text()
    other = 'deformable' if kind == 'dense' else 'dense'
    assert f'{kind} attention' in title and other not in title, title
    legend = maps.legends[0] if maps.legends else None
    if kind == 'deformable':  # marker = level
        assert [t.get_text() for t in legend.get_texts()][0] == 'level 0'
    else:
        assert legend is None
    levels = 1 if kind == 'dense' else 4
    assert len(figs['ks_attention_mask.png'].axes) == levels
    with Image.open(out / 'ks_attention_mask.png') as im:
        assert im.size[0] >= (450 if levels == 1 else 300 * levels), im.size
        assert im.size[1] >= 230, im.size
    with Image.open(out / 'ks_attention_maps.png') as im:
        assert im.size[0] >= 330 * ncol + 60 and im.size[1] >= 2 * 250, im.size
    with Image.open(out / 'ks_attention_accuracy.png') as im:
        assert im.size[0] >= 400 and im.size[1] >= 350, im.size
