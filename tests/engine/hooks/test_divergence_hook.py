"""A diverging run stops with one clear line: DivergenceHook on synthetic outputs, the cost
guard, describe_divergence, build_runner's default hook and a real diverging tools/train.py."""
import os.path as osp
import re
import sys

import numpy as np
import pytest
import torch
from mmdet.models.dense_heads import DETRHead
from toy_helpers import CONFIGS, TOOLS, load_toy_config, run_tool, toy_data_cfg_options

from mmdet_ksdetr.engine.hooks import DivergenceHook, describe_divergence
from mmdet_ksdetr.engine import build_runner
from mmdet_ksdetr.utils import TrainingDivergedError, check_finite_cost

HINT = ('lower the learning rate or enable gradient clipping: '
        'optim_wrapper.clip_grad=dict(max_norm=0.1, norm_type=2)')
DEF_DETR = 'toy/deformable-detr_tiny-r18_1xb2-12e_toy.py'


class _Detector(torch.nn.Module):
    """A trained layer, a frozen one and a DETR head: what the hook looks at."""

    def __init__(self):
        super().__init__()
        self.neck = torch.nn.Linear(4, 4)
        self.frozen = torch.nn.Linear(4, 4).requires_grad_(False)
        # a fresh loss_cls dict: DETRHead writes into its default one (class_weight)
        self.bbox_head = DETRHead(num_classes=3, embed_dims=16, loss_cls=dict(
            type='CrossEntropyLoss', bg_cls_weight=0.1, use_sigmoid=False, class_weight=1.0))


class _Runner:
    """The part of an mmengine Runner the hook uses."""

    def __init__(self, model):
        self.model, self.iter, self.hooks = model, 0, []


def _start(**kwargs):
    hook = DivergenceHook(**kwargs)
    runner = _Runner(_Detector())
    runner.hooks.append(hook)
    hook.before_train(runner)
    return hook, runner


def _step(hook, runner, outputs):
    """One iteration as the train loop runs it (runner.iter is 0-based during the hooks)."""
    hook.before_train_iter(runner, runner.iter)
    hook.after_train_iter(runner, runner.iter, outputs=outputs)
    runner.iter += 1


def _losses(cls, bbox=1.0):
    return dict(loss=torch.tensor(cls + bbox), loss_cls=torch.tensor(cls),
                loss_bbox=torch.tensor(bbox), acc=torch.tensor(float('nan')))


def test_check_finite_cost():
    cost = np.ones((3, 2), dtype=np.float32)
    assert check_finite_cost(cost, 'x') is cost
    t = torch.ones(2, 2)
    assert check_finite_cost(t, 'x') is t
    for bad in (float('nan'), float('inf'), -float('inf')):
        cost[1, 0] = bad
        with pytest.raises(TrainingDivergedError) as err:
            check_finite_cost(cost, 'some matching')
        assert str(err.value) == ('training diverged: the some matching cost has NaN/inf '
                                  'entries (the model predicts non-finite values); ' + HINT)
    assert issubclass(TrainingDivergedError, FloatingPointError)


def test_nan_loss_stops_with_iteration_loss_and_last_finite_value():
    hook, runner = _start()
    for value in (2.0, 5.0, 3.0):  # 'acc' is NaN but not a loss: ignored
        _step(hook, runner, _losses(value))
    assert hook.last_finite['loss_cls'] == (3.0, 3)
    with pytest.raises(TrainingDivergedError) as err:
        _step(hook, runner, _losses(float('nan')))
    assert str(err.value) == ('training diverged at iteration 4: loss_cls is nan (last finite '
                              'value: loss_cls = 3 at iteration 3); ' + HINT)
    assert '\n' not in str(err.value)


def test_component_is_named_before_the_sum_and_first_iteration_has_no_last_value():
    hook, runner = _start()
    with pytest.raises(TrainingDivergedError, match=r'^training diverged at iteration 1: '
                       r'loss_bbox is inf; lower'):
        _step(hook, runner, _losses(1.0, float('inf')))
    hook, runner = _start()
    _step(hook, runner, _losses(1.0))
    with pytest.raises(TrainingDivergedError, match=r'iteration 2: loss is inf \(last finite '
                       r'value: loss = 2 at iteration 1\)'):
        _step(hook, runner, dict(loss=torch.tensor(float('inf')), loss_cls=torch.tensor(1.)))


def test_non_finite_trained_parameter_stops_frozen_one_does_not():
    hook, runner = _start()
    _step(hook, runner, _losses(7.0, 2.0))
    with torch.no_grad():
        runner.model.frozen.weight[0, 0] = float('nan')  # not trained: not checked
    _step(hook, runner, _losses(8.0, 2.0))
    with torch.no_grad():
        runner.model.neck.bias[1] = float('inf')
    with pytest.raises(TrainingDivergedError) as err:
        _step(hook, runner, _losses(9.0, 2.0))
    assert str(err.value) == (
        'training diverged at iteration 3: the parameter update made 1 parameter tensors '
        'NaN/inf (first: neck.bias) (last finite value: loss_cls = 9 at iteration 3); ' + HINT)
    hook, runner = _start(check_params=False)
    with torch.no_grad():
        runner.model.neck.bias[1] = float('inf')
    _step(hook, runner, _losses(1.0))


def test_non_finite_head_prediction_stops_before_the_assigner():
    hook, runner = _start()
    head = runner.model.bbox_head
    _step(hook, runner, _losses(4.0))
    hook.before_train_iter(runner, runner.iter)
    head.train()
    head(torch.randn(2, 1, 5, 16))  # finite: fine
    bad = torch.randn(2, 1, 5, 16)
    bad[1, 0, 3, 7] = float('nan')
    with pytest.raises(TrainingDivergedError) as err:
        head(bad)
    assert str(err.value) == ('training diverged at iteration 2: bbox_head (DETRHead) '
                              'predicts NaN/inf (last finite value: loss_cls = 4 at iteration '
                              '1); ' + HINT)
    head.eval()
    head(bad)  # a frozen teacher or validation is not checked
    head.train()
    hook.after_train(runner)
    head(bad)  # the forward hook is gone after training
    hook, runner = _start(check_head_outputs=False)
    runner.model.bbox_head.train()(bad)


def test_describe_divergence():
    hook, runner = _start()
    _step(hook, runner, _losses(6.0, 20.0))
    _step(hook, runner, _losses(7.0, 30.0))
    scipy_error = ValueError('matrix contains invalid numeric entries')
    assert describe_divergence(runner, scipy_error) == (
        'training diverged at iteration 3: a Hungarian matching cost has NaN/inf entries (the '
        'model predicts non-finite values) (last finite value: loss_bbox = 30 at iteration 2); '
        + HINT)
    guard_error = TrainingDivergedError('the X matching cost has NaN/inf entries')
    assert describe_divergence(runner, guard_error).startswith(
        'training diverged at iteration 3: the X matching cost has NaN/inf entries (last')
    hook_error = TrainingDivergedError('loss_cls is nan', 9, ('loss_cls', 1.0, 8))
    assert describe_divergence(runner, hook_error) == str(hook_error)
    assert describe_divergence(runner, ValueError('another problem')) is None
    assert describe_divergence(runner, KeyError('x')) is None


def test_build_runner_adds_the_hook_once(tmp_path):
    cfg = load_toy_config(DEF_DETR)
    cfg.work_dir = str(tmp_path / 'a')
    hooks = [h for h in build_runner(cfg).hooks if isinstance(h, DivergenceHook)]
    assert len(hooks) == 1 and hooks[0].check_params
    cfg = load_toy_config(DEF_DETR)
    cfg.work_dir = str(tmp_path / 'b')
    cfg.custom_hooks = [dict(type='DivergenceHook', check_params=False)]
    hooks = [h for h in build_runner(cfg).hooks if isinstance(h, DivergenceHook)]
    assert len(hooks) == 1 and not hooks[0].check_params


def test_diverging_train_run_exits_with_one_line(toy_data_root, tmp_path):
    """SGD at lr 1000 without clipping: the losses explode within a few iterations; the tool
    exits 1 with the divergence line, not scipy's traceback from mmdet's assigner."""
    out = run_tool([
        sys.executable, osp.join(TOOLS, 'train.py'), osp.join(CONFIGS, DEF_DETR), '--work-dir',
        str(tmp_path / 'work'), '--cfg-options', 'optim_wrapper.optimizer.type=SGD',
        'optim_wrapper.optimizer.lr=1000', 'optim_wrapper.clip_grad=None', 'randomness.seed=0',
        'train_cfg.max_epochs=1', *toy_data_cfg_options(toy_data_root)])
    log = out.stdout + out.stderr
    assert out.returncode == 1, log[-3000:]
    last = out.stderr.strip().splitlines()[-1]
    m = re.fullmatch(r'train\.py: error: training diverged at iteration (\d+): (.+) \(last '
                     r'finite value: (\S*loss\S*) = (\S+) at iteration (\d+)\); (.+)', last)
    assert m, log[-3000:]
    assert m.group(6) == HINT
    assert int(m.group(5)) < int(m.group(1)) <= 8  # within the first epoch (8 iterations)
    assert float(m.group(4)) > 1e3  # the loss had exploded, finite
    assert 'Traceback' not in log and 'invalid numeric entries' not in log, log[-3000:]
