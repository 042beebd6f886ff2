"""One ``--cfg-options data_root=PATH`` moves all of a config's data (dataloaders and
evaluators), for every shipped config and through the real tools."""
import glob
import os.path as osp
import re
import sys

import pytest
from mmengine.config import Config
from toy_helpers import CONFIGS, TOOLS, run_tool, toy_data_cfg_options

from mmdet_ksdetr.utils.checks import InputError
from mmdet_ksdetr.utils.data_root import DATA_KEYS, apply_data_root, merge_cfg_options

ALL_CONFIGS = sorted(
    p for p in glob.glob(osp.join(CONFIGS, '**', '*.py'), recursive=True)
    if '_base_' not in p.split(osp.sep))
DEF_DETR = osp.join(CONFIGS, 'toy', 'deformable-detr_tiny-r18_1xb2-12e_toy.py')


def strings(node):
    """Every string in a nested config structure."""
    if isinstance(node, dict):
        return [s for v in node.values() for s in strings(v)]
    if isinstance(node, (list, tuple)):
        return [s for v in node for s in strings(v)]
    return [node] if isinstance(node, str) else []


def dataset_roots(node):
    """Every ``data_root`` value of the datasets in a nested config structure."""
    if isinstance(node, dict):
        own = [node['data_root']] if 'data_root' in node else []
        return own + [r for v in node.values() for r in dataset_roots(v)]
    if isinstance(node, (list, tuple)):
        return [r for v in node for r in dataset_roots(v)]
    return []


@pytest.mark.parametrize('path', ALL_CONFIGS, ids=lambda p: osp.relpath(p, CONFIGS))
def test_every_path_derives_from_data_root(path):
    cfg = Config.fromfile(path)
    old = cfg.data_root
    data = {k: cfg[k] for k in DATA_KEYS if cfg.get(k) is not None}
    roots = dataset_roots(data)
    assert roots and set(roots) == {old}, f'datasets use {set(roots)}, data_root is {old}'
    anns = [e['ann_file'] for k in ('val_evaluator', 'test_evaluator')
            if isinstance(cfg.get(k), dict) and cfg[k].get('ann_file') for e in [cfg[k]]]
    assert all(a.startswith(old) for a in anns), anns

    apply_data_root(cfg, '/elsewhere/set/')
    moved = {k: cfg[k] for k in DATA_KEYS if cfg.get(k) is not None}
    assert set(dataset_roots(moved)) == {'/elsewhere/set/'}
    assert not [s for s in strings(moved) if s.startswith(old.rstrip('/'))]
    for a in anns:
        assert osp.join('/elsewhere/set/', a[len(old):]) in strings(moved)


def test_explicit_loader_key_still_wins_and_bad_input_is_one_line():
    cfg = Config.fromfile(DEF_DETR)
    merge_cfg_options(cfg, {'data_root': '/a/', 'val_dataloader.dataset.data_root': '/b/'})
    assert cfg.train_dataloader.dataset.data_root == '/a/'
    assert cfg.val_dataloader.dataset.data_root == '/b/'
    assert cfg.val_evaluator.ann_file == '/a/annotations/instances_val.json'
    assert cfg.data_root == '/a/'
    cfg = Config.fromfile(DEF_DETR)
    cfg.data_root = None  # a config without a top-level data_root
    with pytest.raises(InputError, match='no top-level data_root'):
        merge_cfg_options(cfg, {'data_root': '/a/'})


def test_one_key_moves_train_and_test_tools(toy_data_root, tmp_path):
    """tools/train.py trains one epoch and evaluates on the set named by one data_root key;
    tools/test.py evaluates its checkpoint the same way."""
    assert toy_data_cfg_options(toy_data_root) == [f'data_root={toy_data_root}']
    work = str(tmp_path / 'work')
    out = run_tool([sys.executable, osp.join(TOOLS, 'train.py'), DEF_DETR, '--work-dir', work,
                    '--cfg-options', 'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
                    *toy_data_cfg_options(toy_data_root)])
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-4000:]
    assert re.search(r'coco/bbox_mAP: \d\.\d+', log)
    dumped = Config.fromfile(osp.join(work, osp.basename(DEF_DETR)))  # the config it ran
    assert set(dataset_roots({k: dumped[k] for k in DATA_KEYS})) == {toy_data_root}
    assert dumped.val_evaluator.ann_file == f'{toy_data_root}annotations/instances_val.json'
    out = run_tool([sys.executable, osp.join(TOOLS, 'test.py'), DEF_DETR,
                    osp.join(work, 'epoch_1.pth'), '--work-dir', str(tmp_path / 'test'),
                    '--cfg-options', *toy_data_cfg_options(toy_data_root)])
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-4000:]
    assert re.search(r'coco/bbox_mAP: \d\.\d+', log)
