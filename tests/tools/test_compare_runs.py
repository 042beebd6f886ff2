"""tools/analysis_tools/compare_runs.py on hand-written mmengine json logs with known values:
the JSON numbers equal a direct computation, the PNG is a real, non-blank image, and bad
input stops with one ``compare_runs.py: error:`` line."""
import json
import os.path as osp
import sys

import numpy as np
import pytest
from output_helpers import assert_one_line_error
from PIL import Image
from toy_helpers import ROOT, run_tool

sys.path.insert(0, osp.join(ROOT, 'tools', 'analysis_tools'))
import compare_runs  # noqa: E402

TOOL = 'tools/analysis_tools/compare_runs.py'


def _train_row(epoch, it, loss, loss_cls, loss_iou=None):
    row = dict(lr=1e-4, loss=loss, loss_cls=loss_cls, epoch=epoch, iter=it, step=it)
    if loss_iou is not None:
        row['loss_iou'] = loss_iou
    return row


def _val_row(epoch, m_ap):
    return {'coco/bbox_mAP': m_ap, 'coco/bbox_mAP_50': 2 * m_ap, 'data_time': 0.01,
            'time': 0.2, 'step': epoch}


def _write_log(work_dir, stamp, rows, tail=''):
    vis = work_dir / stamp / 'vis_data'
    vis.mkdir(parents=True)
    text = ''.join(json.dumps(r) + '\n' for r in rows) + tail
    (vis / 'scalars.json').write_text(text)
    (vis / f'{stamp}.json').write_text(text)  # mmengine writes both; only one may be read


# run A: 2 epochs of 4 iterations logged every 2, then resumed from epoch 1 in a second log
# that rewrites epoch 2 and adds epoch 3 (the later log wins); ends with a cut-off line
A_FIRST = [_train_row(1, 2, 4.0, 2.0, 1.0), _train_row(1, 4, 3.0, 1.5, 0.9), _val_row(1, 0.10),
           _train_row(2, 6, 9.9, 9.9, 9.9), _train_row(2, 8, 9.9, 9.9, 9.9), _val_row(2, 0.99)]
A_RESUMED = [_train_row(2, 6, 2.5, 1.2, 0.8), _train_row(2, 8, 2.1, 1.0, 0.7), _val_row(2, 0.20),
             _train_row(3, 10, 1.9, 0.9, 0.6), _train_row(3, 12, 1.5, 0.7, 0.5),
             _val_row(3, 0.30)]
# run B: no loss_iou logged
B_ROWS = [_train_row(1, 2, 5.0, 2.5), _train_row(1, 4, 4.2, 2.2), _val_row(1, 0.05),
          _train_row(2, 6, 3.6, 1.9), _train_row(2, 8, 3.0, 1.6), _val_row(2, 0.12)]


@pytest.fixture
def runs(tmp_path):
    a, b = tmp_path / 'deformable_baseline', tmp_path / 'ks_method'
    _write_log(a, '20250101_000000', A_FIRST)
    _write_log(a, '20250102_000000', A_RESUMED, tail='{"lr": 0.0001, "loss": 1.')
    _write_log(b, '20250101_000000', B_ROWS)
    return str(a), str(b)


def _expected(rows_in_order, key, by):
    """Direct computation: the last row per step wins, then per-epoch means or the values."""
    train, val = {}, {}
    for r in rows_in_order:
        (val if 'coco/bbox_mAP' in r else train)[r['step']] = r
    if key.startswith('coco/'):
        return [s for s in sorted(val)], [val[s][key] for s in sorted(val)]
    pts = [(train[s]['epoch'], s, train[s][key]) for s in sorted(train) if key in train[s]]
    if by == 'iter':
        return [p[1] for p in pts], [p[2] for p in pts]
    epochs = sorted({p[0] for p in pts})
    return epochs, [float(np.mean([p[2] for p in pts if p[0] == e])) for e in epochs]


def _main(argv):
    try:
        return compare_runs.main(argv)
    except SystemExit as e:
        return str(e.code)


@pytest.mark.parametrize('loss_x', ['epoch', 'iter'])
def test_numbers_equal_direct_computation_and_png_is_drawn(runs, tmp_path, loss_x, capsys):
    out = tmp_path / 'out'
    keys = ['coco/bbox_mAP', 'loss', 'loss_cls', 'loss_iou']
    res = compare_runs.main(list(runs) + ['--labels', 'base', 'method', '--keys'] + keys +
                            ['--loss-x', loss_x, '--out-dir', str(out)])
    with open(out / 'compare_runs.json') as f:
        written = json.load(f)
    assert written == json.loads(json.dumps(res))
    assert written['loss_x'] == loss_x and list(written['keys']) == keys
    assert [r['label'] for r in written['runs']] == ['base', 'method']
    assert len(written['runs'][0]['logs']) == 2  # both runs of the resumed work dir, in order
    for key in keys:
        panel = written['keys'][key]
        assert panel['x'] == ('epoch' if key.startswith('coco/') else loss_x)
        for label, rows in (('base', A_FIRST + A_RESUMED), ('method', B_ROWS)):
            if key == 'loss_iou' and label == 'method':
                assert label not in panel['series']
                continue
            xs, ys = _expected(rows, key, loss_x)
            assert panel['series'][label]['x'] == xs
            assert panel['series'][label]['y'] == pytest.approx(ys, abs=1e-12)
    # spot values by hand: base mAP 0.1/0.2/0.3 (0.99 replaced by the resumed log)
    assert written['keys']['coco/bbox_mAP']['series']['base']['y'] == [0.1, 0.2, 0.3]
    if loss_x == 'epoch':
        assert written['keys']['loss']['series']['base']['y'] == pytest.approx([3.5, 2.3, 1.7])
    err = capsys.readouterr().err
    assert 'method lack "loss_iou"' in err and 'unfinished last line' in err
    img = np.asarray(Image.open(out / 'compare_runs.png').convert('RGB'), dtype=np.float64)
    assert img.shape[0] > 100 and img.shape[1] > 100 and img.var() > 0


def test_default_keys_and_labels(runs, tmp_path, capsys):
    out = tmp_path / 'out'
    res = compare_runs.main(list(runs) + ['--out-dir', str(out)])
    # defaults: those of coco/bbox_mAP loss loss_cls loss_bbox loss_iou that some run has
    assert list(res['keys']) == ['coco/bbox_mAP', 'loss', 'loss_cls', 'loss_iou']
    assert [r['label'] for r in res['runs']] == ['deformable_baseline', 'ks_method']
    assert 'no run has "loss_bbox"' in capsys.readouterr().err
    assert osp.isfile(out / 'compare_runs.png')


def test_nan_loss_is_a_gap_not_a_smaller_mean(tmp_path):
    nan_run = tmp_path / 'diverged'
    _write_log(nan_run, '20250101_000000', [_train_row(1, 2, 4.0, 2.0), _train_row(1, 4, 3.0, 1.0),
                                            _train_row(2, 6, 2.0, 1.0),
                                            _train_row(2, 8, float('nan'), 1.0)])
    assert 'NaN' in (nan_run / '20250101_000000' / 'vis_data' / 'scalars.json').read_text()
    for loss_x, expected in (('epoch', [3.5, None]), ('iter', [4.0, 3.0, 2.0, None])):
        out = tmp_path / loss_x
        res = compare_runs.main([str(nan_run), '--keys', 'loss', 'loss_cls', '--loss-x', loss_x,
                                 '--out-dir', str(out)])
        assert res['keys']['loss']['series']['diverged']['y'] == expected
        text = (out / 'compare_runs.json').read_text()
        assert 'NaN' not in text and 'Infinity' not in text  # strict JSON: null
        assert json.loads(text)['keys']['loss']['series']['diverged']['y'] == expected


def test_iteration_based_run(tmp_path):
    """No ``epoch`` in the training rows: validation steps are iterations, losses per iter."""
    it_run = tmp_path / 'iter_run'
    rows = [dict(loss=3.0, iter=50, step=50), dict(loss=2.0, iter=100, step=100),
            {'coco/bbox_mAP': 0.1, 'step': 100}]
    _write_log(it_run, '20250101_000000', rows)
    res = compare_runs.main([str(it_run), '--keys', 'coco/bbox_mAP', 'loss', '--out-dir',
                             str(tmp_path / 'out')])
    assert res['loss_x'] == 'iter'
    assert res['keys']['coco/bbox_mAP'] == dict(
        x='iter', series=dict(iter_run=dict(x=[100], y=[0.1])))
    assert res['keys']['loss']['series']['iter_run'] == dict(x=[50, 100], y=[3.0, 2.0])
    msg = _main([str(it_run), '--loss-x', 'epoch', '--out-dir', str(tmp_path / 'out2')])
    assert msg.startswith('compare_runs.py: error: --loss-x epoch') and 'use --loss-x iter' in msg


def test_bad_input_one_line_errors(runs, tmp_path):
    out = str(tmp_path / 'out')
    empty = tmp_path / 'empty_work_dir'
    empty.mkdir()
    cases = [
        ([str(empty), runs[0]], 'has no mmengine json logs'),
        ([str(tmp_path / 'nope'), runs[0]], 'does not exist'),
        (list(runs) + ['--keys', 'loss', 'pascal_voc/mAP'], 'no run has the key "pascal_voc/mAP"'),
        (list(runs) + ['--labels', 'only_one'], '1 --labels for 2 work dirs'),
        (list(runs) + ['--labels', 'x', 'x'], '--labels must differ'),
    ]
    for argv, fragment in cases:
        msg = _main(argv + ['--out-dir', out])
        assert isinstance(msg, str) and msg.startswith('compare_runs.py: error: '), msg
        assert fragment in msg and '\n' not in msg, msg
    bad = tmp_path / 'bad'
    _write_log(bad, '20250101_000000', [])
    (bad / '20250101_000000' / 'vis_data' / 'scalars.json').write_text(
        '{"step": 1}\nnot json\n{"step": 2}\n')
    msg = _main([str(bad), '--out-dir', out])
    assert 'line 2 is not JSON' in msg
    assert not osp.exists(osp.join(out, 'compare_runs.png'))  # nothing written on an error


def test_command_line(runs, tmp_path):
    """As a process: writes both files; a key no run has is one error line."""
    out = str(tmp_path / 'out')
    res = run_tool([sys.executable, TOOL] + list(runs) + ['--out-dir', out], timeout=300)
    assert res.returncode == 0, res.stderr
    assert osp.isfile(osp.join(out, 'compare_runs.png'))
    assert osp.isfile(osp.join(out, 'compare_runs.json'))
    res = run_tool([sys.executable, TOOL, runs[1], '--keys', 'loss_nope', '--out-dir', out],
                   timeout=300)
    assert_one_line_error(res, 'compare_runs.py', 'no run has the key "loss_nope"')


def test_total_loss_with_teacher_streams_is_labelled_and_split(tmp_path, monkeypatch):
    """A KS-DETR run logs ``loss`` = its own terms + its teacher streams' terms: the legend
    says so and a dashed line shows the loss without them, as the baseline logs it."""
    base, ks = tmp_path / 'base', tmp_path / 'ks'
    _write_log(base, '20250101_000000', [_train_row(1, 2, 3.0, 1.0), _train_row(1, 4, 2.0, 0.8)])
    ks_rows = []
    for it, (own, t_cls, t_d0) in zip((2, 4), ((2.0, 0.5, 0.25), (1.5, 0.4, 0.1))):
        row = _train_row(1, it, own + t_cls + t_d0, 0.7)
        row.update({'ks_share_v.loss_cls': t_cls, 'ks_share_v.d0.loss_cls': t_d0,
                    'd0.loss_cls': 0.3})
        ks_rows.append(row)
    _write_log(ks, '20250101_000000', ks_rows)
    figs = []
    plot = compare_runs.plot
    monkeypatch.setattr(compare_runs, 'plot', lambda *a: figs.append(plot(*a)))
    res = compare_runs.main([str(base), str(ks), '--keys', 'loss', '--loss-x', 'iter',
                             '--out-dir', str(tmp_path / 'out')])
    panel = res['keys']['loss']
    assert panel['series']['ks']['y'] == pytest.approx([2.75, 2.0])  # the logged total
    assert panel['extra_streams'] == {'ks': ['ks_share_v']}  # d0 is not an extra stream
    assert panel['without_extra_streams'] == {'ks': dict(x=[2, 4], y=pytest.approx([2.0, 1.5]))}
    ax = figs[0].axes[0]
    assert ax.get_title() == 'loss (sum of every logged loss term)'
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ['base', 'ks: total incl. ks_share_v.*', 'ks: without ks_share_v.*']
    assert compare_runs.extra_streams(dict(train={1: {'student.loss_cls': 1, 'distill.loss_kd': 1,
                                                      'd3.loss_iou': 1}})) == ['distill']
