"""Config mistakes that fail while the model is built end tools/train.py and tools/test.py
with one line that names the key, not a 15-frame traceback."""
import sys

import pytest
from toy_helpers import CONFIGS, run_tool, save_random_checkpoint, toy_data_cfg_options

from mmdet_ksdetr.engine.build_runner import describe_build_error

DEFORMABLE = f'{CONFIGS}/toy/deformable-detr_tiny-r18_1xb2-12e_toy.py'


def test_describe_build_error():
    kw = TypeError("DetectionTransformer.__init__() got an unexpected keyword argument 'foo'")
    assert '"foo"' in describe_build_error(kw)
    reg = KeyError('NoSuchHead is not in the mmdet::model registry. Please check ...')
    assert 'type="NoSuchHead"' in describe_build_error(reg)
    assert describe_build_error(TypeError('unsupported operand')) is None  # a real bug


@pytest.mark.parametrize('tool, option, expected', [
    ('train.py', 'model.foo=1', '"foo" (remove or rename that key)'),
    ('test.py', 'model.bbox_head.type=NoSuchHead', 'type="NoSuchHead"'),
])
def test_tools_report_build_errors_in_one_line(tool, option, expected, toy_data_root,
                                               tmp_path):
    args = [sys.executable, f'tools/{tool}', DEFORMABLE]
    if tool == 'test.py':
        args.append(save_random_checkpoint('toy/deformable-detr_tiny-r18_1xb2-12e_toy.py',
                                           str(tmp_path / 'ckpt.pth')))
    out = run_tool(args + ['--work-dir', str(tmp_path / 'w'), '--cfg-options', option] +
                   toy_data_cfg_options(toy_data_root))
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith(f'{tool}: error:') and expected in last, out.stderr[-2000:]
    assert 'Traceback' not in out.stderr
