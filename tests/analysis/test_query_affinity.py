"""tools/analysis_tools/query_affinity.py and mmdet_ksdetr/analysis/query_affinity.py: queries
per object above IoU thresholds and the closest query, per decoder layer."""
import json
import os.path as osp

import numpy as np
import pytest
import torch
from output_helpers import assert_one_line_error, run_analysis_tool_in_process
from toy_helpers import (CONFIGS, TOY_CLASSES, run_tool, save_random_checkpoint,
                         toy_data_cfg_options, write_toy_retinanet_config)

from mmdet_ksdetr.analysis.query_affinity import (HIST_BINS, boxes_to_original,
                                                  gt_class_probs, object_affinity,
                                                  overlay_boxes, summarize)

TOOL = 'query_affinity.py'
DAC = 'toy/dac_detr/dac-deformable-detr-refine-twostage_tiny-r18_1xb2-12e_toy.py'
BASE = 'toy/deformable-detr_tiny-r18_1xb2-12e_toy.py'
T = (0.5, 0.6, 0.7, 0.8)


def iou(a, b):
    """Plain-python IoU of two x1y1x2y2 boxes (the direct computation)."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def synthetic():
    """2 layers x 6 queries, 2 GTs; query heights make exact IoUs with GT 0 (0..100 square)."""
    gts = torch.tensor([[0., 0., 100., 100.], [200., 200., 240., 260.]])
    layer0 = [[0, 0, 100, 55], [0, 0, 100, 65], [0, 0, 100, 75], [0, 0, 100, 85],
              [200, 200, 240, 260], [300, 300, 310, 310]]
    layer1 = [[0, 0, 100, 90], [0, 0, 100, 90], [0, 0, 100, 30], [210, 200, 240, 260],
              [200, 200, 240, 230], [0, 0, 100, 100]]
    return torch.tensor([layer0, layer1], dtype=torch.float), gts


def test_counts_and_closest_query_equal_a_direct_computation():
    boxes, gts = synthetic()
    labels = torch.tensor([2, 0])
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 6, 3, generator=g)
    stats = object_affinity(boxes, gts, gt_class_probs(logits, labels), T)
    for k in range(2):
        for j in range(2):
            ious = [iou(boxes[k, q].tolist(), gts[j].tolist()) for q in range(6)]
            assert stats['counts'][k, j].tolist() == [sum(i > t for i in ious) for t in T]
            best = int(np.argmax(ious))  # first maximum
            assert stats['best_query'][k, j] == best
            assert stats['best_iou'][k, j].item() == pytest.approx(max(ious), abs=1e-6)
            assert stats['best_score'][k, j].item() == pytest.approx(
                torch.sigmoid(logits[k, best, labels[j]]).item(), abs=1e-6)
    # the hand-built numbers themselves: layer 0, GT 0 has IoUs .55 .65 .75 .85
    assert stats['counts'][0, 0].tolist() == [4, 3, 2, 1]
    assert stats['counts'][1, 0].tolist() == [3, 3, 3, 3]  # .9, .9, 1.0 (the 6th query)
    assert stats['best_query'][1, 0] == 5
    assert stats['counts'][1, 1].tolist() == [1, 1, 1, 0]  # IoUs .75 and .5 (not above .5)
    # a tie (two queries at IoU .9 would be the closest without the 6th): lowest index wins
    tie = object_affinity(boxes[1:, :2], gts[:1], torch.zeros(1, 2, 1), T)
    assert tie['best_query'].tolist() == [[0]]


def test_softmax_head_score_and_wrong_labels():
    logits = torch.randn(1, 2, 4)  # 3 classes + background
    probs = gt_class_probs(logits, torch.tensor([1]), use_sigmoid=False)
    torch.testing.assert_close(probs[..., 0], logits.softmax(-1)[..., 1])
    with pytest.raises(ValueError, match='outside'):
        gt_class_probs(torch.randn(1, 2, 3), torch.tensor([3]))


def test_boxes_to_original_pixels():
    # image resized from 200x100 (w x h) to 400x200: scale_factor (2, 2), img_shape (200, 400)
    pred = torch.tensor([[0.5, 0.5, 0.5, 0.5], [0.9, 0.5, 0.4, 0.2]])
    out = boxes_to_original(pred, (200, 400), (2.0, 2.0))
    torch.testing.assert_close(out, torch.tensor([[50., 25., 150., 75.],
                                                  [140., 40., 200., 60.]]))  # clipped at x=200


def test_summarize_and_overlay_match_direct_means():
    boxes, gts = synthetic()
    stats = object_affinity(boxes, gts, torch.rand(2, 6, 2), T)
    objects = [dict(counts=stats['counts'][:, j].tolist(),
                    best_iou=stats['best_iou'][:, j].tolist(),
                    best_score=stats['best_score'][:, j].tolist()) for j in range(2)]
    s = summarize(objects, 2, T, HIST_BINS)
    assert s['avg_queries_per_object'][0] == pytest.approx(
        stats['counts'][0].float().mean(0).tolist())
    assert s['mean_best_iou'] == pytest.approx(stats['best_iou'].mean(1).tolist())
    assert [sum(h) for h in s['best_iou_hist']] == [2, 2]
    assert s['best_iou_hist'][1][-1] == 1  # IoU 1.0 falls in the last bin
    near = overlay_boxes(boxes[0], gts, 0.7)
    assert near.tolist() == [[0, 0, 100, 75], [0, 0, 100, 85], [200, 200, 240, 260]]


def _load(out):
    with open(osp.join(out, 'query_affinity.json')) as f:
        return json.load(f)


def test_tool_on_trained_dac_and_baseline(trained_toy_checkpoint, toy_data_root, tmp_path):
    from PIL import Image
    dac, base = trained_toy_checkpoint(DAC), trained_toy_checkpoint(BASE)
    out = tmp_path / 'out'
    res = run_tool(['python', f'tools/analysis_tools/{TOOL}', osp.join(CONFIGS, DAC), dac,
                    '--compare', osp.join(CONFIGS, BASE), base, '--labels', 'dac', 'base',
                    '--num-images', '4', '--out-dir', str(out), '--cfg-options'] +
                   toy_data_cfg_options(toy_data_root))
    assert res.returncode == 0, res.stderr[-3000:]
    data = _load(out)
    assert data['num_images'] == 4 and data['thresholds'] == list(T)
    assert set(data['models']) == {'dac', 'base'}
    for rec in data['models'].values():
        assert rec['num_layers'] == 2 and rec['num_queries'] == 30
        assert rec['num_objects'] == len(rec['objects']) > 0
        assert all(o['label'] < len(TOY_CLASSES) for o in rec['objects'])
        for o in rec['objects']:
            for counts, best in zip(o['counts'], o['best_iou']):
                assert counts == sorted(counts, reverse=True)  # non-increasing in t
                assert (counts[0] > 0) == (best > T[0])  # a query above t <=> best above t
        again = summarize(rec['objects'], rec['num_layers'], T, data['hist_bins'])
        for key, value in again.items():
            assert rec[key] == value, key  # the same floats through JSON
        assert rec['overlay'] and all(e['gt_bboxes'] for e in rec['overlay'])
    # both models saw the same GT objects
    assert [o['bbox'] for o in data['models']['dac']['objects']] == \
        [o['bbox'] for o in data['models']['base']['objects']]
    for name in ('queries_per_object', 'closest_query', 'overlay'):
        with Image.open(out / f'{name}.png') as im:
            assert np.asarray(im.convert('L'), dtype=float).var() > 0, name


def test_misfit_pairs_fail_in_one_line(trained_toy_checkpoint, toy_data_root, tmp_path):
    base = trained_toy_checkpoint(BASE)
    opts = ['--cfg-options'] + toy_data_cfg_options(toy_data_root)
    res = run_analysis_tool_in_process(f'tools/analysis_tools/{TOOL}', [
        osp.join(CONFIGS, DAC), base, '--out-dir', str(tmp_path / 'a')] + opts)
    assert_one_line_error(res, TOOL, 'missing')
    cfg = write_toy_retinanet_config(tmp_path)
    ckpt = save_random_checkpoint(cfg, str(tmp_path / 'retinanet.pth'))
    res = run_analysis_tool_in_process(f'tools/analysis_tools/{TOOL}', [
        cfg, ckpt, '--out-dir', str(tmp_path / 'b')] + opts)
    assert_one_line_error(res, TOOL, 'RetinaNet', 'not a DETR-family detector')
    assert not (tmp_path / 'b' / 'query_affinity.json').exists()


def test_overlay_has_a_legend_of_its_boxes(toy_data_root, tmp_path, monkeypatch):
    import glob
    import importlib.util

    from mmdet_ksdetr.analysis import common
    spec = importlib.util.spec_from_file_location(
        '_tool_query_affinity', osp.join(osp.dirname(CONFIGS), 'tools', 'analysis_tools', TOOL))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    image = sorted(glob.glob(osp.join(toy_data_root, 'val', '*.png')))[0]
    entry = dict(image=image, layer=1, threshold=0.5, gt_bboxes=[[10., 10., 40., 50.]],
                 query_bboxes=[[12., 11., 41., 48.], [8., 9., 39., 52.]])
    figs, save = [], common.save_figure
    monkeypatch.setattr(common, 'save_figure',
                        lambda fig, path, dpi=100: (figs.append(fig), save(fig, path, dpi)))
    tool.plot_overlay({'DAC': dict(overlay=[entry]), 'base': dict(overlay=[entry])},
                      str(tmp_path / 'overlay.png'), 100)
    assert (tmp_path / 'overlay.png').is_file() and len(figs) == 1
    assert len(figs[0].legends) == 1
    texts = [t.get_text() for t in figs[0].legends[0].get_texts()]
    assert texts == ['query boxes (last decoder layer) with IoU > 0.5 to a GT object',
                     'GT objects']
