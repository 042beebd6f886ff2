"""Every checkpoint mmengine reads (PretrainedInit, load_checkpoint, CheckpointLoader schemes)
goes through the library's safe loader: a hostile file is refused in one line even with
TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1, and good files still load."""
import os
import os.path as osp

import pytest
import torch
from mmengine.model.weight_init import PretrainedInit
from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint
from toy_helpers import CONFIGS, run_tool, toy_data_cfg_options

from mmdet_ksdetr import compat
from mmdet_ksdetr.utils.checks import InputError

TOY = osp.join(CONFIGS, 'toy/deformable-detr_tiny-r18_1xb2-12e_toy.py')


class _Hostile:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


@pytest.fixture
def hostile(tmp_path):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'hostile.pth'
    torch.save(dict(state_dict=dict(weight=torch.zeros(2, 2)), payload=_Hostile(marker)), path)
    return str(path), marker


def test_every_file_reading_scheme_is_routed():
    routed = {p for p, loader in CheckpointLoader._schemes.items()
              if getattr(loader, '__mmdet_ksdetr_patched__', False)}
    for prefix in ('', 'http://', 'https://', 'torchvision://', 'modelzoo://',
                   'open-mmlab://', 'openmmlab://', 'mmcls://', 'pavi://'):
        assert prefix in routed, prefix
    assert any('s3' in p for p in routed)


@pytest.mark.parametrize('prefix', [None, 'backbone.'])
def test_pretrained_init_refuses_code_even_when_forced(hostile, monkeypatch, prefix):
    path, marker = hostile
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    init = PretrainedInit(checkpoint=path, prefix=prefix)
    with pytest.raises(InputError, match=r'refused: the file would run code \(posix.system\)'):
        init(torch.nn.Linear(2, 2))
    assert not marker.exists()


def test_pretrained_init_and_load_checkpoint_still_load_weights(tmp_path):
    path = str(tmp_path / 'good.pth')
    torch.save(dict(state_dict={'backbone.weight': torch.full((2, 2), 3.),
                                'backbone.bias': torch.ones(2)}), path)
    layer = torch.nn.Linear(2, 2)
    PretrainedInit(checkpoint=path, prefix='backbone.')(layer)
    assert torch.equal(layer.weight.detach(), torch.full((2, 2), 3.))
    assert torch.equal(_load_checkpoint(path)['state_dict']['backbone.bias'], torch.ones(2))
    with pytest.raises(InputError, match='does not exist'):
        _load_checkpoint(str(tmp_path / 'missing.pth'))


def test_route_is_idempotent():
    first = compat.route_mmengine_checkpoint_loading(lambda p: p)
    try:
        assert compat.route_mmengine_checkpoint_loading(lambda p: p) == first
    finally:
        from mmdet_ksdetr.utils.checks import route_mmengine_checkpoint_loading
        route_mmengine_checkpoint_loading()


def test_train_tool_refuses_hostile_backbone_init_cfg(hostile, toy_data_root, tmp_path):
    """The fault-injection case: a config whose backbone init_cfg names a hostile file, run with
    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1, used to run the pickle and train with exit 0."""
    path, marker = hostile
    cfg = tmp_path / 'hostile_init.py'
    cfg.write_text(f"_base_ = '{TOY}'\nmodel = dict(backbone=dict(init_cfg=dict("
                   f"_delete_=True, type='Pretrained', checkpoint='{path}')))\n")
    env = dict(os.environ, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD='1')
    res = run_tool(['python', 'tools/train.py', str(cfg), '--work-dir', str(tmp_path / 'w'),
                    '--skip-image-check', '--cfg-options', 'train_cfg.max_epochs=1'] +
                   toy_data_cfg_options(toy_data_root), env=env)
    assert res.returncode != 0
    last = res.stderr.strip().splitlines()[-1]
    assert last == (f'train.py: error: checkpoint "{path}" refused: the file would run code '
                    f'(posix.system). Only tensors, plain containers and mmengine checkpoint '
                    f'data are loaded; do not use a file from a source you do not trust'), \
        res.stderr[-2000:]
    assert 'Traceback' not in res.stderr
    assert not marker.exists() and not (tmp_path / 'w' / 'epoch_1.pth').exists()
