"""A finite blow-up (lr=1000: loss 14 -> 4e9, finite for epochs) stops the run with the one-line
divergence message; the recorded loss logs of normal 2-epoch toy runs never trip it."""
import json
import os.path as osp
import re
import sys

import pytest
import torch
from toy_helpers import CONFIGS, TOOLS, run_tool, toy_data_cfg_options

from mmdet_ksdetr.engine.hooks import DivergenceHook
from mmdet_ksdetr.utils import TrainingDivergedError
from mmdet_ksdetr.utils.divergence import LossBlowUpDetector

#: total ``loss`` per iteration of tools/train.py runs on the 16-image toy set (seed 0, batch
#: 2, 8 iterations per epoch): normal 2-epoch runs of several toy configs, and the
#: deformable-DETR toy config at lr=1000 (AdamW, 4 epochs). See data/toy_loss_logs.json.
LOGS = json.load(open(osp.join(osp.dirname(__file__), 'data', 'toy_loss_logs.json')))
DEF_DETR = osp.join(CONFIGS, 'toy/deformable-detr_tiny-r18_1xb2-12e_toy.py')


def _first_trip(values, **kwargs):
    detector = LossBlowUpDetector(**kwargs)
    for i, v in enumerate(values, 1):
        if detector.update(v, i):
            return i
    return None


@pytest.mark.parametrize('name', sorted(k for k in LOGS['normal']))
def test_normal_toy_runs_never_trip(name):
    assert _first_trip(LOGS['normal'][name]) is None
    assert _first_trip(LOGS['normal'][name], factor=10, patience=3) is None  # not even close


def test_lr_1000_trips_after_patience():
    values = LOGS['lr1000']
    assert values[0] < 100 and min(values[1:]) > 1e8  # finite, exploded at iteration 2
    assert _first_trip(values) == 21  # 20 consecutive iterations above 1000 x median
    assert _first_trip(values, patience=5) == 6


def test_a_short_spike_and_a_zero_median_do_not_trip():
    spike = [10.0] * 30 + [1e6] * 19 + [10.0] * 30
    assert _first_trip(spike) is None
    assert _first_trip([0.0] * 5 + [1.0] * 40) is None


def test_hook_raises_the_one_line_message():
    hook = DivergenceHook(check_params=False, blowup_patience=3)

    class _Runner:
        iter = 0
    runner = _Runner()
    with pytest.raises(TrainingDivergedError) as e:
        for i, v in enumerate([12.0, 3e9, 3e9, 3e9]):
            runner.iter = i
            hook.after_train_iter(runner, i, outputs=dict(loss=torch.tensor(v)))
    assert str(e.value).startswith('training diverged at iteration 4: loss = 3e+09 has stayed '
                                   'above 1000 x its running median (12) for 3 iterations '
                                   '(since iteration 2); lower the learning rate')
    assert DivergenceHook(blowup_factor=None).blowup is None


def test_train_tool_stops_a_finite_blowup(toy_data_root, tmp_path):
    work = tmp_path / 'w'
    res = run_tool([sys.executable, osp.join(TOOLS, 'train.py'), DEF_DETR, '--work-dir',
                    str(work), '--skip-image-check', '--cfg-options',
                    'optim_wrapper.optimizer.lr=1000', 'train_cfg.max_epochs=3',
                    'train_cfg.val_interval=10', 'randomness.seed=0'] +
                   toy_data_cfg_options(toy_data_root))
    assert res.returncode == 1, res.stderr[-3000:]
    last = res.stderr.strip().splitlines()[-1]
    assert re.fullmatch(r'train\.py: error: training diverged at iteration 2\d: loss = \S+ has '
                        r'stayed above 1000 x its running median \(\S+\) for 20 iterations '
                        r'\(since iteration \d+\); lower the learning rate .*', last), last
    assert 'Traceback' not in res.stderr
    # the run stopped inside epoch 3: the last checkpoint (epoch 2) is the one left
    assert (work / 'epoch_2.pth').is_file() and not (work / 'epoch_3.pth').exists()
    assert (work / 'last_checkpoint').read_text() == 'epoch_2.pth'
