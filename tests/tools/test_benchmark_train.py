"""benchmark_train.py times two configs on the same batches and reports their ratio."""
import os.path as osp
import sys

import pytest
from toy_helpers import CONFIGS, TOOLS

sys.path.insert(0, osp.join(TOOLS, 'analysis_tools'))
import benchmark_train  # noqa: E402

DETR = osp.join(CONFIGS, 'toy', 'detr_tiny-r18_1xb2-12e_toy.py')
COND = osp.join(CONFIGS, 'toy', 'conditional-detr_tiny-r18_1xb2-12e_toy.py')


def test_two_configs_ratio(tmp_path):
    out = str(tmp_path / 'bench.json')
    res = benchmark_train.main([DETR, COND, '--iters', '2', '--warmup', '1', '--img-size', '64',
                                '--batch-size', '1', '--inference', '--no-memory',
                                '--json', out])
    assert [m['train']['n'] for m in res['models']] == [2, 2]
    assert [m['inference']['n'] for m in res['models']] == [2, 2]
    a, b = res['models']
    assert res['train_ratio'] == pytest.approx(b['train']['median_s'] / a['train']['median_s'])
    assert res['inference_ratio'] > 0
    assert osp.isfile(out)


def test_same_batches_for_both_models():
    b1 = benchmark_train.make_batches(2, 2, 64, 3, 3, seed=0)
    b2 = benchmark_train.make_batches(2, 2, 64, 3, 3, seed=0)
    assert all((x == y).all() for x, y in zip(b1[1]['inputs'], b2[1]['inputs']))
    boxes = b1[0]['data_samples'][0].gt_instances.bboxes
    assert boxes.shape == (3, 4) and (boxes[:, 2:] > boxes[:, :2]).all() and boxes.max() < 64


def test_missing_config_is_a_clear_error():
    with pytest.raises(SystemExit, match='does not exist'):
        benchmark_train.main(['configs/nope.py', '--iters', '1'])
