"""``tools/misc/gpu_check.py --device cpu`` as a user runs it: a subset of the toy configs (one
per family) passes with the expected table and JSON, AMP and CUDA-only rows are reported as
skipped (never passed), a broken config makes it exit non-zero, and the KS deformable
attention comparison catches a difference between two paths.

The run over every toy config is opt-in (``MMDET_KSDETR_SLOW=1``): 720 s on a shared 2-core
machine (470 s of CPU time). The CI tests here: 84 s on a lightly loaded 2-core machine.
"""
import glob
import json
import os.path as osp
import sys

import pytest
from toy_helpers import CONFIGS, ROOT, TOOLS, run_tool, slow

TOOL = osp.join(TOOLS, 'misc', 'gpu_check.py')
# one (cheap) config per family: the five baselines' folder, KS, DAC and each distiller
ONE_PER_FAMILY = ['dab-detr_tiny-r18_1xb2-12e_toy.py', 'ks_detr/ks-dab-detr_*',
                  'dac_detr/dac-deformable-*', 'detr_distill/detr-distill_*',
                  'kd_detr/kd-detr_dab-*', 'd3etr/d3etr_*', 'qskd/qskd_*', 'crosskd/*',
                  'feature_kd/fitnet_*']
FAMILIES = sorted({'baselines'} | {osp.basename(osp.dirname(p))
                                   for p in glob.glob(osp.join(CONFIGS, 'toy', '*', '*.py'))})

slow_sweep = slow('every toy config')


def gpu_check(args, tmp_path):
    """Run the tool on CPU; returns (completed process, parsed JSON)."""
    out = tmp_path / 'result.json'
    res = run_tool([sys.executable, TOOL, '--device', 'cpu', '--iters', '1', '--val-images',
                    '2', '--work-dir', str(tmp_path / 'work'), '--out', str(out), *args],
                   env={'PYTHONPATH': ROOT})
    assert out.is_file(), res.stdout[-3000:] + res.stderr[-3000:]
    return res, json.loads(out.read_text())


def rows_by(result):
    return {(r['config'], r['check']): r for r in result['rows']}


def test_one_config_per_family_on_cpu_and_a_broken_config_fails(toy_data_root, tmp_path):
    """One config per family trains and predicts; AMP and 2-GPU rows are skipped with their
    reason, never passed; a config whose model type does not exist fails its training row (its
    predict row is skipped) and makes the exit code 1."""
    broken = tmp_path / 'broken_toy.py'
    broken.write_text(f"_base_ = ['{CONFIGS}/toy/dab-detr_tiny-r18_1xb2-12e_toy.py']\n"
                      "model = dict(type='NoSuchDetector')\n")
    res, result = gpu_check(['--skip-timing', '--data-root', toy_data_root, '--configs',
                             *ONE_PER_FAMILY, str(broken)], tmp_path)
    assert res.returncode == 1, res.stdout[-3000:]
    rows = rows_by(result)
    assert rows['broken_toy', 'train fp32']['status'] == 'FAIL'
    assert 'NoSuchDetector' in rows['broken_toy', 'train fp32']['detail']
    assert rows['broken_toy', 'predict']['status'] == 'skipped (train fp32 failed)'
    assert result['failed'] == 1 and '1 of' in res.stdout and 'checks failed' in res.stdout
    configs = sorted({c for c, _ in rows if c not in ('-', 'broken_toy')})
    assert len(configs) == len(ONE_PER_FAMILY)
    families = {c.split('/')[0] if '/' in c else 'baselines' for c in configs}
    assert families == set(FAMILIES), families  # no family left out
    for config in configs:
        assert rows[config, 'train fp32']['status'] == 'PASS'
        assert 'loss' in rows[config, 'train fp32']['detail']
        assert rows[config, 'predict']['status'] == 'PASS'
        assert 'bbox_mAP' in rows[config, 'predict']['detail']
        assert rows[config, 'train amp']['status'] == 'skipped (CUDA only)'
        assert rows[config, 'train dist x2']['status'] == 'skipped (needs 2 CUDA GPUs)'
        assert (config, 'timing') not in rows
    assert rows['-', 'ks msda cuda vs cpu']['status'] == 'skipped (no CUDA)'
    assert result['environment']['device'] == 'cpu'
    table = res.stdout[res.stdout.index('\nconfig '):]  # the printed table has every row
    for (config, check), row in rows.items():
        assert any(line.startswith(config + ' ') and check in line and row['status'] in line
                   for line in table.splitlines()), (config, check)


def test_timing_ratios_on_cpu(toy_data_root, tmp_path):
    """A KS config against the toy config it extends, a distiller against student + teacher;
    a baseline has no timing row."""
    res, result = gpu_check(['--checks', 'timing', '--timing-iters', '1', '--data-root',
                             toy_data_root, '--configs', 'ks_detr/ks-dab-detr_*',
                             'kd_detr/kd-detr_dab-*', 'dab-detr_tiny-r18_1xb2-12e_toy.py'],
                            tmp_path)
    assert res.returncode == 0, res.stdout[-3000:]
    rows = rows_by(result)
    assert {check for _, check in rows} == {'toy data', 'timing'}
    ks = rows['ks_detr/ks-dab-detr_tiny-r18_1xb2-12e_toy', 'timing']
    kd = rows['kd_detr/kd-detr_dab-detr_tiny-r18_1xb2-12e_toy', 'timing']
    for row in (ks, kd):
        assert row['status'] == 'PASS' and 0.5 < row['ratio'] < 10 and row['seconds'] > 0, row
    assert 'train step vs dab-detr_tiny-r18_1xb2-12e_toy' in ks['detail']
    assert 'distill / (student + teacher)' in kd['detail']
    assert ('dab-detr_tiny-r18_1xb2-12e_toy', 'timing') not in rows
    assert f'ratio {ks["ratio"]:.2f}' in res.stdout


def test_bad_selection_is_one_line(tmp_path):
    res = run_tool([sys.executable, TOOL, '--device', 'cpu', '--families', 'no_such_family'],
                   env={'PYTHONPATH': ROOT})
    assert res.returncode != 0
    assert 'gpu_check.py: error: unknown --families no_such_family' in res.stderr
    assert 'ks_detr' in res.stderr  # says what exists


def test_msda_comparison_detects_a_difference(monkeypatch):
    """The CUDA-vs-CPU comparison, run here between the CPU path and a CPU path whose result is
    perturbed, must fail, and pass between two identical paths."""
    sys.path.insert(0, osp.join(TOOLS, 'misc'))
    import gpu_check as tool
    real = tool.msda_forward_backward

    def same(module, inputs, device):
        return real(module, inputs, 'cpu')

    monkeypatch.setattr(tool, 'msda_forward_backward', same)
    assert 'max |CUDA - CPU| 0.0e+00' in tool.msda_cuda_vs_cpu()

    def perturbed(module, inputs, device):
        result = real(module, inputs, 'cpu')
        if device == 'cuda':
            result['grad value_proj.weight'] = result['grad value_proj.weight'] * 1.01
        return result

    monkeypatch.setattr(tool, 'msda_forward_backward', perturbed)
    with pytest.raises(AssertionError, match='value_proj.weight differs'):
        tool.msda_cuda_vs_cpu()


@slow_sweep
def test_every_toy_config_on_cpu(toy_data_root, tmp_path):
    res, result = gpu_check(['--data-root', toy_data_root], tmp_path)
    assert res.returncode == 0, res.stdout[-5000:]
    configs = {r['config'] for r in result['rows']} - {'-'}
    assert len(configs) == len(glob.glob(osp.join(CONFIGS, 'toy', '**', '*.py'),
                                         recursive=True))


def test_overhead_option_runs_the_suites_with_a_table(tmp_path, monkeypatch):
    """``--overhead ks_detr`` runs overhead.py's suite on the check's device with its markdown
    table in the work dir (the full-size run itself is a GPU job, not a test)."""
    sys.path.insert(0, osp.join(TOOLS, 'misc'))
    import gpu_check as tool
    args = tool.parse_args(['--device', 'cpu', '--overhead', 'ks_detr', 'kd_detr'])
    args.work_dir = str(tmp_path)
    seen = []

    def run_logged(cmd, log_path, env=None):
        seen.append(cmd)
        open(cmd[cmd.index('--table') + 1], 'w').write('| config |\n')

    monkeypatch.setattr(tool, 'run_logged', run_logged)
    detail = tool.overhead_tables(args, str(tmp_path / 'overhead.log'))
    [cmd] = seen
    assert cmd[1].endswith('overhead.py') and cmd[2:5] == ['--suite', 'ks_detr', 'kd_detr']
    assert cmd[cmd.index('--device') + 1] == 'cpu' and '--threads' in cmd
    assert detail == f'table in {tmp_path / "overhead.md"}'
    assert (tmp_path / 'overhead.md').read_text() == '| config |\n'
