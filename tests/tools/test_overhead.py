"""overhead.py: the floor of each method's extra work is recorded and timed in isolation, the
peak memory of a step is measured, and the suites name existing configs."""
import os.path as osp
import sys

import pytest
import torch
from toy_helpers import CONFIGS, ROOT, TOOLS

sys.path.insert(0, osp.join(TOOLS, 'analysis_tools'))
import overhead  # noqa: E402

TOY = osp.join(CONFIGS, 'toy')
FAST = ['--iters', '1', '--warmup', '0', '--img-size', '64', '--batch-size', '1',
        '--num-gts', '2', '--top', '3']


def _run(capsys, *argv):
    [result] = overhead.main([*argv, *FAST])
    return result, capsys.readouterr().out


def test_ks_floor_parts_and_suite_table(capsys, monkeypatch, tmp_path):
    ks = osp.join(TOY, 'ks_detr', 'ks-dab-detr_tiny-r18_1xb2-12e_toy.py')
    monkeypatch.setitem(overhead.SUITES, 'toy_ks',
                        [(ks, osp.join(TOY, 'dab-detr_tiny-r18_1xb2-12e_toy.py'))])
    table = tmp_path / 'overhead.md'
    r, out = _run(capsys, '--suite', 'toy_ks', '--table', str(table))
    lines = table.read_text().splitlines()
    assert lines[2] == overhead.TABLE_HEAD.splitlines()[0]
    assert lines[4] == overhead.table_row(r) and lines[4] in out
    # one batched decoder call for both teacher memories; their head groups; the mask; the
    # attention streams
    assert set(r['floor']) == {
        '1 extra decoder pass(es)',
        'head loss of ks_teacher_hidden_states, ks_teacher_references',
        'GT foreground token mask', 'KS teacher streams of the last encoder layer'}
    assert r['floor']['1 extra decoder pass(es)'] > 0
    assert r['peak_baseline'] > 0 and r['peak_method'] > 0
    assert 'method / (baseline + floor)' in out and 'peak memory of the step' in out


def test_dac_floor_parts(capsys):
    dac = osp.join(TOY, 'dac_detr', 'dac-dino-cdn-ice-4scale_tiny-r18_1xb2-12e_toy.py')
    r, _ = _run(capsys, dac, '--baseline', osp.join(TOY, 'dino-4scale_tiny-r18_1xb2-12e_toy.py'))
    assert set(r['floor']) == {'C-stream in the decoder',
                               'head loss of hidden_states_c, references_c'}


@pytest.mark.parametrize('config, parts', [
    ('kd_detr/kd-detr_dab-detr_tiny-r18_1xb2-12e_toy.py',
     {'teacher forward (no grad)', '2 extra decoder + head pass(es)', 'distillation losses'}),
    ('feature_kd/mgd_deformable-detr_tiny-r18_1xb2-12e_toy.py',
     {'teacher forward (no grad)', 'distillation losses'}),
])
def test_distiller_floor_parts(capsys, config, parts):
    r, out = _run(capsys, osp.join(TOY, config))
    assert set(r['floor']) == parts
    assert all(v > 0 for v in r['floor'].values())
    assert overhead.table_row(r).startswith(f'| `{osp.basename(config)[:-3]}` |')


def test_mgd_losses_are_recorded_inside_the_distiller_call():
    """The recorder-fed losses (MGD: connector + loss) are the distillation losses' floor."""
    from mmdet_ksdetr.utils.benchmark import build_model, make_batches
    cfg, model, optim = build_model(
        osp.join(TOY, 'feature_kd', 'mgd_deformable-detr_tiny-r18_1xb2-12e_toy.py'), [], 'cpu')
    probes = overhead.FloorProbes(model, model.student, distiller=True)
    batch = make_batches(1, 1, 64, 2, 3, 0)[0]
    probes.record([lambda b: model.train_step(b, optim)], batch)
    recorded = [c for c in probes.recorder_modules if c.calls]
    kinds = {type(c.fn.__self__).__name__ for c in recorded}
    assert {'MGDConnector', 'MGDLoss'} <= kinds
    probes.record([], batch)  # recording off outside record()
    model.train_step(make_batches(1, 1, 64, 2, 3, 1)[0], optim)
    assert not any(c.calls for c in probes.recorder_modules)


def test_peak_memory_of_a_known_step():
    def step(_):
        a = torch.empty(4 * 2**20, dtype=torch.uint8)  # 4 MiB, freed at return
        b = torch.empty(2 * 2**20, dtype=torch.uint8)
        del a, b

    _, peak = overhead._profile(step, None, 'cpu')
    assert 6.0 <= peak < 6.5


def test_detached_copy_keeps_identity_and_grad_flags():
    x = torch.ones(2, requires_grad=True) * 2
    y = torch.zeros(2)
    (a, b, c), _ = overhead._detached(((x, x, y), {}))
    assert a is b and a is not x and a.requires_grad and a.grad_fn is None
    assert not c.requires_grad


def test_suites_name_existing_configs():
    from mmdet_ksdetr.utils.checks import check_config_path
    for pairs in overhead.SUITES.values():
        for config, baseline in pairs:
            assert osp.isfile(osp.join(ROOT, config)), config
            if baseline:
                check_config_path(baseline if '::' in baseline else osp.join(ROOT, baseline))


def test_bad_arguments_are_one_line_errors(capsys):
    with pytest.raises(SystemExit, match='--baseline'):
        overhead.main([osp.join(TOY, 'dab-detr_tiny-r18_1xb2-12e_toy.py'), *FAST])
    with pytest.raises(SystemExit):
        overhead.main(['--iters', '1'])
    assert 'give either CONFIG or --suite' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        overhead.main(['x.py', '--table', 'x.md'])
    assert '--table needs --suite' in capsys.readouterr().err
    with pytest.raises(SystemExit):  # refused before any measurement
        overhead.main(['--suite', 'qskd', '--table', '/no/such/folder/t.md'])
    assert 'output folder "/no/such/folder" does not exist' in capsys.readouterr().err
