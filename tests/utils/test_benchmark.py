"""mmdet_ksdetr.utils.benchmark: the timing pieces the benchmark tools share."""
import argparse
import os.path as osp
import sys
import time
import types

import pytest

from toy_helpers import ROOT

from mmdet_ksdetr.utils.benchmark import add_timer_argument, make_batches, timer_clock

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
