"""``tools/analysis_tools/teacher_layers.py`` and ``mmdet_ksdetr.analysis.teacher_layers``: the
per-layer counts on a hand-built three-layer teacher, the tool on a trained toy teacher
(+ --compare), and one-line errors for teachers it cannot analyse."""
import json
import math
import os.path as osp

import pytest
import torch
from output_helpers import assert_one_line_error, run_analysis_tool_in_process
from toy_helpers import (CONFIGS, ROOT, run_tool, save_random_checkpoint, toy_data_cfg_options,
                         write_toy_retinanet_config)

from mmdet_ksdetr.analysis.teacher_layers import layer_counts, summarise

TOOL = osp.join(ROOT, 'tools', 'analysis_tools', 'teacher_layers.py')
DEFORMABLE = 'toy/deformable-detr_tiny-r18_1xb2-12e_toy.py'
DINO = 'toy/dino-4scale_tiny-r18_1xb2-12e_toy.py'


def _sig(x):
    return 1 / (1 + math.exp(-x))


def _hand_teacher():
    """3 layers, image 0 with GT g0 (class 0) and g1 (class 1), 3 queries; image 1 without GT.
    Every box is centred on its GT, so its IoU is its width / the GT's width."""
    g0, g1 = [0.5, 0.5, 0.4, 0.4], [0.25, 0.25, 0.2, 0.2]

    def on(g, iou):
        return [g[0], g[1], g[2] * iou, g[3]]

    boxes = torch.tensor([[  # layer, query
        [on(g0, 1.0), on(g0, 0.8), on(g1, 0.9)],
        [on(g0, 0.75), on(g0, 0.9), on(g1, 0.9)],
        [on(g0, 0.5), on(g0, 0.5), on(g1, 0.5)]]])
    logits = torch.tensor([[
        [[1.0, -2.0], [0.2, -1.0], [-3.0, 1.5]],
        [[-1.0, 0.2], [2.0, -1.0], [-3.0, 1.0]],
        [[0.0, 0.5], [1.0, -1.0], [-3.0, 0.0]]]])
    boxes = torch.cat([boxes, torch.rand(1, 3, 3, 4) * 0.3 + 0.2]).transpose(0, 1)
    logits = torch.cat([logits, torch.randn(1, 3, 3, 2)]).transpose(0, 1)  # [L, B, Q, C]
    pos = torch.tensor([[0, -1, 1], [0, -1, 1], [-1, 0, 1]])  # layer 3 matches q1 to g0
    pos_gt_inds = torch.stack([pos, torch.full((3, 3), -1)], 1)
    gt_labels = torch.tensor([[0, 1], [-1, -1]])
    gt_boxes = torch.tensor([[g0, g1], [[0.0] * 4] * 2])
    return logits, boxes, pos_gt_inds, gt_labels, gt_boxes, torch.tensor([2, 0])


def test_counts_on_a_hand_built_three_layer_teacher():
    torch.manual_seed(0)
    s = summarise(layer_counts(*_hand_teacher()))
    # layer 2: q0 (g0) is better at layer 1 (IoU 1 > .75, score s(1) > s(-1)); q2 (g1) is not
    # (score s(1.5) > s(1) but the same IoU .9: strictly higher is required). Layer 3: q1 (g0)
    # is better at layer 2 only (layer 1: s(.2) < s(1)); q2 (g1) at layers 1 and 2 (IoU .9
    # both: the refinement takes the earliest, layer 1).
    assert s['earlier_better'] == [[0, 0, 0], [1, 0, 0], [1, 2, 0]]
    assert s['earlier_better_share'] == [[None] * 3, [0.5, None, None], [0.5, 1.0, None]]
    rows = s['layers']
    assert [r['num_pos'] for r in rows] == [2, 2, 2]
    assert [r['earlier_better_any'] for r in rows] == [0, 1, 2]
    assert [r['pos_changed'] for r in rows] == [0, 1, 2]
    # negatives: only image 0 (image 1 has no GT): q1, q1, q0. Layer 2: q1's top class 0 had
    # the lower logit .2 at layer 1; layer 3: q0's top class 1 had .2 at layer 2.
    assert [r['num_neg'] for r in rows] == [1, 1, 1]
    assert [r['neg_changed'] for r in rows] == [0, 1, 1]
    expect = dict(
        mean_iou=[0.95, 0.825, 0.5], refined_mean_iou=[0.95, 0.95, 0.9],
        mean_score=[(_sig(1) + _sig(1.5)) / 2, (_sig(-1) + _sig(1)) / 2, (_sig(1) + _sig(0)) / 2],
        refined_mean_score=[(_sig(1) + _sig(1.5)) / 2, _sig(1), (_sig(2) + _sig(1.5)) / 2],
        mean_neg_top_score=[_sig(.2), _sig(2), _sig(.5)],
        refined_mean_neg_top_score=[_sig(.2), _sig(.2), _sig(.2)])
    for key, values in expect.items():
        assert [r[key] for r in rows] == pytest.approx(values, abs=1e-6), key


def test_rescale_gt_to_input_uses_the_scale_factor():
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

    from mmdet_ksdetr.analysis.teacher_layers import rescale_gt_to_input
    ds = DetDataSample(metainfo=dict(scale_factor=(2.0, 0.5)))
    ds.gt_instances = InstanceData(bboxes=torch.tensor([[10., 20., 30., 40.]]),
                                   labels=torch.tensor([0]))
    after = [dict(type='LoadImageFromFile'), dict(type='Resize'), dict(type='LoadAnnotations')]
    rescale_gt_to_input([ds], after)
    assert ds.gt_instances.bboxes.tolist() == [[20., 10., 60., 20.]]
    # annotations loaded before Resize are in input pixels already: left as they are
    rescale_gt_to_input([ds], [after[0], after[2], after[1]])
    assert ds.gt_instances.bboxes.tolist() == [[20., 10., 60., 20.]]


def test_tool_on_a_trained_teacher_with_compare(trained_toy_checkpoint, toy_data_root,
                                                tmp_path):
    ckpt = trained_toy_checkpoint(DEFORMABLE, iters=4)
    dino = save_random_checkpoint(DINO, str(tmp_path / 'dino.pth'))
    out = tmp_path / 'out'
    res = run_tool(['python', TOOL, osp.join(CONFIGS, DEFORMABLE), ckpt, '--compare',
                    osp.join(CONFIGS, DINO), dino, '--labels', 'deformable', 'dino',
                    '--num-images', '4', '--out-dir', str(out), '--device', 'cpu',
                    '--cfg-options'] + toy_data_cfg_options(toy_data_root))
    assert res.returncode == 0, res.stderr[-3000:]
    result = json.loads((out / 'teacher_layers.json').read_text())
    assert [m['label'] for m in result['models']] == ['deformable', 'dino']
    for m in result['models']:
        L = m['num_layers']
        assert L == 2 and m['num_images'] == 4 and len(m['layers']) == L
        assert m['num_gt'] > 0 and m['assigner']['type'] == 'HungarianAssigner'
        for i, row in enumerate(m['layers']):
            # a Hungarian match gives every GT one query per layer (30 queries >= GT)
            assert row['num_pos'] == m['num_gt']
            assert row['num_pos'] + row['num_neg'] == m['num_images_with_gt'] * m['num_queries']
            # a positive is refined exactly when an earlier layer is strictly better
            assert row['pos_changed'] == row['earlier_better_any']
            assert max(m['earlier_better'][i], default=0) <= row['earlier_better_any'] <= sum(
                m['earlier_better'][i])
            assert all(m['earlier_better'][i][j] == 0 for j in range(i, L))
            assert 0.0 <= row['mean_iou'] <= 1.0 and 0.0 <= row['mean_score'] <= 1.0
            assert row['refined_mean_iou'] >= row['mean_iou'] - 1e-9
            assert row['refined_mean_neg_top_score'] <= row['mean_neg_top_score'] + 1e-9
        assert m['layers'][0]['pos_changed'] == m['layers'][0]['neg_changed'] == 0
    from PIL import Image
    assert result['figures']
    for name in result['figures']:
        with Image.open(out / name) as im:
            im.load()
            lo, hi = im.convert('L').getextrema()
        assert hi - lo > 50, f'{name} looks blank'


def _one_layer_config(tmp_path):
    cfg = tmp_path / 'deformable_one_layer.py'
    cfg.write_text(f'_base_ = {osp.join(CONFIGS, DEFORMABLE)!r}\n'
                   'model = dict(decoder=dict(num_layers=1))\n')
    return str(cfg)


def test_errors_for_teachers_it_cannot_analyse(tmp_path, toy_data_root):
    one = _one_layer_config(tmp_path)
    retina = write_toy_retinanet_config(tmp_path)
    cases = {  # name: (config, checkpoint, fragments of the one-line error)
        'misfit': (osp.join(CONFIGS, DEFORMABLE),
                   save_random_checkpoint(DINO, str(tmp_path / 'dino.pth')), ('does not fit',)),
        'one layer': (one, save_random_checkpoint(one, str(tmp_path / 'one.pth')),
                      ('1 layer', 'at least 2')),
        'not a DETR': (retina, save_random_checkpoint(retina, str(tmp_path / 'r.pth')),
                       ('RetinaNet', 'not a DETR-family detector')),
    }
    for name, (cfg, ckpt, fragments) in cases.items():
        res = run_analysis_tool_in_process(TOOL, [
            cfg, ckpt, '--out-dir', str(tmp_path / 'out'), '--device', 'cpu',
            '--cfg-options'] + toy_data_cfg_options(toy_data_root))
        assert_one_line_error(res, 'teacher_layers.py', *fragments)
    assert not (tmp_path / 'out' / 'teacher_layers.json').exists()


def test_a_softmax_detr_is_refused():
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    from toy_helpers import load_toy_config

    from mmdet_ksdetr.analysis.teacher_layers import check_teacher
    from mmdet_ksdetr.utils.errors import InputError
    init_default_scope('mmdet')
    detr = MODELS.build(load_toy_config('toy/detr_tiny-r18_1xb2-12e_toy.py').model)
    with pytest.raises(InputError, match='DETRHead classifies with a softmax'):
        check_teacher(detr, 'detr.py')


def test_a_distiller_gives_its_teacher_and_its_matcher():
    from mmengine.registry import init_default_scope
    from mmrazor.registry import MODELS
    from toy_helpers import load_toy_config

    from mmdet_ksdetr.analysis.teacher_layers import teacher_of
    init_default_scope('mmdet')
    cfg = load_toy_config('toy/kd_detr/kd-detr-tprd_deformable-detr_tiny-r18_1xb2-12e_toy.py')
    cfg.model.teacher_ckpt = None
    with pytest.warns(UserWarning, match='no teacher_ckpt'):
        algo = MODELS.build(cfg.model)
    detector, assigner, source = teacher_of(algo)
    assert detector is algo.teacher and assigner is algo.tprd_targets.assigner
    assert source == 'distiller teacher'
    assert teacher_of(algo.teacher)[2] == 'detector'
