"""Shared fixtures. Helper functions live in tests/toy_helpers.py (``from toy_helpers import
load_toy_config, toy_batch, run_tool, free_port``)."""
import os.path as osp
import sys

import pytest

TESTS = osp.dirname(osp.abspath(__file__))
sys.path.insert(0, TESTS)
sys.path.insert(0, osp.join(osp.dirname(TESTS), 'tools', 'misc'))

import mmdet_ksdetr  # noqa: E402,F401  (compat + registration before any test)


@pytest.fixture(scope='session')
def toy_data_root(tmp_path_factory):
    """A small toy COCO set (16 train / 8 val images) shared by the whole test session."""
    from make_toy_coco import make_toy_coco
    root = str(tmp_path_factory.mktemp('data') / 'toy_coco')
    make_toy_coco(root, num_train=16, num_val=8, seed=0)
    return root + '/'
