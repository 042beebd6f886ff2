"""``--cfg-options`` of the tools: mmengine's parsing kept, the inputs it would crash on (a
``dict(...)`` value recurses to Python's limit) or misread refused in one argparse line."""
import argparse

import pytest

from mmdet_ksdetr.utils.cfg_options import CfgOptionsAction


def _parser():
    parser = argparse.ArgumentParser(prog='train.py')
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction)
    return parser


def test_values_parse_as_in_mmengine():
    args = _parser().parse_args(['--cfg-options', 'train_cfg.max_epochs=1', 'a=[1,2]',
                                 'b=(3,4)', 'c=x', 'd=0.5', 'e=True', 'data_root=/a/b/'])
    assert args.cfg_options == {'train_cfg.max_epochs': 1, 'a': [1, 2], 'b': (3, 4), 'c': 'x',
                                'd': 0.5, 'e': True, 'data_root': '/a/b/'}


@pytest.mark.parametrize('item, fragment', [
    ('train_cfg=dict(type="IterBasedTrainLoop",max_iters=4)', 'dict values are not supported'),
    ('train_cfg={"max_iters": 4}', 'dict values are not supported'),
    ('max_epochs', 'expected key=value'),
    ('=3', 'expected key=value'),
])
def test_unparseable_items_stop_with_one_line(item, fragment, capsys):
    with pytest.raises(SystemExit) as exc:
        _parser().parse_args(['--cfg-options', item])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith('train.py: error: --cfg-options') and fragment in err[-1], err
    assert len(err) == 2  # argparse's usage line + the error, no traceback


def test_train_tool_refuses_dict_value_in_one_line():
    from toy_helpers import run_tool
    res = run_tool(['python', 'tools/train.py', 'configs/toy/detr_tiny-r18_1xb2-12e_toy.py',
                    '--cfg-options', 'train_cfg=dict(max_epochs=1)'], timeout=120)
    assert res.returncode == 2
    assert 'Traceback' not in res.stderr and 'dict values are not supported' in res.stderr
