"""mmdet_ksdetr.utils.benchmark: the timing pieces the benchmark tools share."""
import argparse
import os.path as osp
import sys
import time
import types

import pytest

from toy_helpers import ROOT

from mmdet_ksdetr.utils.benchmark import (add_timer_argument, interleaved_medians, make_batches,
                                          output_file, timer_clock)

sys.path.insert(0, osp.join(ROOT, 'tools', 'analysis_tools'))
from call_timers import CallTimers  # noqa: E402


def _parse(argv):
    parser = argparse.ArgumentParser()
    add_timer_argument(parser)
    parser.add_argument('--device', default='cpu')
    return parser, parser.parse_args(argv)


def test_timer_clock_choices():
    parser, args = _parse([])
    assert timer_clock(parser, args) is time.perf_counter
    parser, args = _parse(['--timer', 'cpu'])
    assert timer_clock(parser, args) is time.process_time


def test_cpu_timer_refused_on_an_accelerator(capsys):
    parser, args = _parse(['--timer', 'cpu', '--device', 'cuda'])
    with pytest.raises(SystemExit):
        timer_clock(parser, args)
    assert 'use it with --device cpu' in capsys.readouterr().err


def _fake_clock_jobs(names, cost):
    """Jobs that log their order, and a clock on which job ``n`` takes ``cost[n]`` seconds."""
    now, order = [0.0], []

    def job(name):
        def run():
            order.append(name)
            now[0] += cost[name]
        return run
    return {n: job(n) for n in names}, order, (lambda: now[0])


def test_interleaved_medians_order_and_times():
    cost = dict(a=1.0, b=2.0, c=3.0)
    jobs, order, clock = _fake_clock_jobs('abc', cost)
    med = interleaved_medians(jobs, runs=2, warmup=1, clock=clock)
    assert order == list('abc' * 3)
    assert med == cost
    jobs, order, clock = _fake_clock_jobs('abc', cost)
    med = interleaved_medians(jobs, runs=3, warmup=1, clock=clock, rotate=True)
    assert order == list('abc' 'bca' 'cab' 'abc')  # round r starts at the r-th job
    assert med == cost


@pytest.mark.parametrize('tool', ['benchmark_train', 'benchmark_distill'])
def test_unwritable_json_refused_up_front(tool, tmp_path, capsys):
    """A --json that cannot be written stops the tool before it builds or times anything."""
    main = __import__(tool).main
    with pytest.raises(SystemExit):
        main([osp.join(ROOT, 'configs', 'toy', 'dab-detr_tiny-r18_1xb2-12e_toy.py'),
              '--json', str(tmp_path)])
    assert f'output "{tmp_path}" is a folder: give a file name' in capsys.readouterr().err
    assert output_file(str(tmp_path / 'r.json')) == str(tmp_path / 'r.json')


def test_call_timers_count_only_while_active():
    ticks = iter(range(100))
    ns = types.SimpleNamespace(f=lambda x: x + 1)
    timers = CallTimers('cpu', clock=lambda: next(ticks))
    timers.wrap(ns, 'f', 'f')
    assert ns.f(1) == 2 and not timers.totals  # inactive: passes through, no clock read
    timers.active = True
    assert ns.f(2) == 3 and ns.f(3) == 4
    assert timers.totals['f'] == 2  # two calls, one tick each


def test_make_batches_same_seed_same_batches():
    b1 = make_batches(2, 2, 64, 3, 3, seed=0)
    b2 = make_batches(2, 2, 64, 3, 3, seed=0)
    assert all((x == y).all() for x, y in zip(b1[1]['inputs'], b2[1]['inputs']))
    labels = b1[0]['data_samples'][0].gt_instances.labels
    assert labels.shape == (3, ) and labels.max() < 3
