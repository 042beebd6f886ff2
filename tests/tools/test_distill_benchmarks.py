"""tools/analysis_tools/benchmark_distill.py and tprd_refinement_cost.py on tiny toy runs."""
import json
import sys

import pytest
from toy_helpers import CONFIGS, ROOT, run_tool

sys.path.insert(0, f'{ROOT}/tools/analysis_tools')

TPRD_CFG = f'{CONFIGS}/toy/kd_detr/kd-detr-tprd_deformable-detr_tiny-r18_1xb2-12e_toy.py'
PLAIN_CFG = f'{CONFIGS}/toy/kd_detr/kd-detr_deformable-detr_tiny-r18_1xb2-12e_toy.py'
TINY = ['--iters', '2', '--warmup', '0', '--img-size', '64', '--batch-size', '1', '--num-gts',
        '2', '--threads', '1']


@pytest.mark.parametrize('timer', ['wall', 'cpu'])
def test_benchmark_distill_ratio_and_pieces(tmp_path, timer):
    import benchmark_distill
    out = tmp_path / 'r.json'
    res = benchmark_distill.main([TPRD_CFG, *TINY, '--timer', timer, '--json', str(out)])
    med = res['median_s']
    assert all(med[k] > 0 for k in ('distill', 'student', 'teacher'))
    assert res['ratio'] == pytest.approx(med['distill'] / (med['student'] + med['teacher']))
    # every distillation loss of the config was timed, and each is a share of the step
    assert any('KDDETRLoss' in k for k in res['distill_pieces_mean_s'])
    assert all(0 < v < 1 for v in res['distill_pieces_share'].values())
    assert json.loads(out.read_text())['timer'] == timer


def test_benchmark_distill_times_tprd_without_hiding_the_refiner():
    """QSKD + TPRD reads its refiner's assigner during the step: timing the refinement must
    leave the refiner object in place."""
    import benchmark_distill
    cfg = f'{CONFIGS}/toy/qskd/qskd-tprd_deformable-detr_tiny-r18_1xb2-12e_toy.py'
    res = benchmark_distill.main([cfg, *TINY, '--timer', 'cpu'])
    assert res['distill_pieces_mean_s']['TPRD teacher refinement'] > 0


def test_benchmark_train_times_a_distillation_config_as_benchmark_distill(tmp_path, capsys):
    """benchmark_train.py given one DETR distillation config measures, in one run, the
    distillation step against (student step + teacher forward)."""
    import benchmark_train
    cfg = f'{CONFIGS}/toy/detr_distill/detr-distill_deformable-detr_tiny-r18_1xb2-12e_toy.py'
    out = tmp_path / 'r.json'
    res = benchmark_train.main([cfg, *TINY, '--timer', 'cpu', '--json', str(out)])
    med = res['median_s']
    assert res['ratio'] == pytest.approx(med['distill'] / (med['student'] + med['teacher']))
    assert any('TeacherGroupLoss' in k for k in res['distill_pieces_mean_s'])
    assert json.loads(out.read_text())['config'] == cfg
    assert 'ratio distill / (student + teacher)' in capsys.readouterr().out
    with pytest.raises(SystemExit, match='do not apply'):
        benchmark_train.main([cfg, *TINY, '--inference'])


def test_tprd_refinement_cost_share():
    import tprd_refinement_cost
    res = tprd_refinement_cost.main([TPRD_CFG, *TINY, '--timer', 'cpu'])
    assert res['assign_s'] > 0 and res['refine_s'] > 0, 'the TPRD functions were not timed'
    assert 0 < res['share'] < 1


def test_tprd_refinement_cost_refuses_a_config_without_tprd():
    res = run_tool([sys.executable, 'tools/analysis_tools/tprd_refinement_cost.py', PLAIN_CFG,
                    *TINY])
    assert res.returncode != 0
    assert 'model.tprd=True' in res.stderr


def test_benchmark_output_is_concise_unless_verbose():
    """The report, not mmengine's per-parameter build and init logs (behind --verbose)."""
    args = [sys.executable, 'tools/analysis_tools/benchmark_distill.py', PLAIN_CFG, *TINY]
    quiet = run_tool(args)
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    text = quiet.stdout + quiet.stderr
    assert 'ratio distill / (student + teacher)' in text
    assert len(text.splitlines()) < 30 and 'Initialized by' not in text
    verbose = run_tool(args + ['--verbose'])
    assert 'Initialized by' in verbose.stdout + verbose.stderr
