"""Shared fixtures. Helper functions live in tests/toy_helpers.py (``from toy_helpers import
load_toy_config, toy_batch, run_tool, free_port``)."""
import os.path as osp
import sys

import pytest

TESTS = osp.dirname(osp.abspath(__file__))
sys.path.insert(0, TESTS)
sys.path.insert(0, osp.join(osp.dirname(TESTS), 'tools', 'misc'))

import mmdet_ksdetr  # noqa: E402,F401  (compat + registration before any test)


def _share_cpus_between_workers():
    """Under pytest-xdist each worker gets its share of the CPUs for torch's intra-op threads
    (N workers x all CPUs each would oversubscribe the machine and slow every test down)."""
    import os
    workers = int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', '1'))
    if workers > 1:
        import torch
        torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) // workers))


_share_cpus_between_workers()


@pytest.fixture(scope='session')
def toy_data_root(tmp_path_factory):
    """A small toy COCO set (16 train / 8 val images) shared by the whole test session."""
    from make_toy_coco import make_toy_coco
    root = str(tmp_path_factory.mktemp('data') / 'toy_coco')
    make_toy_coco(root, num_train=16, num_val=8, seed=0)
    return root + '/'


@pytest.fixture(scope='session')
def trained_toy_checkpoint(toy_data_root, tmp_path_factory):
    """``trained_toy_checkpoint(rel_cfg, iters=4)``: the checkpoint of ``configs/<rel_cfg>``
    after ``iters`` training iterations on the toy set (``tools/train.py``, one epoch over the
    first ``2 * iters`` training images at batch size 2, seed 0), trained once per test session
    and config. Returns its path."""
    from toy_helpers import CONFIGS, run_tool, toy_data_cfg_options
    cache = {}

    def train(rel_cfg, iters=4):
        key = (rel_cfg, iters)
        if key not in cache:
            work = tmp_path_factory.mktemp('trained')
            opts = ['train_cfg.max_epochs=1', 'train_cfg.val_interval=2',
                    f'train_dataloader.dataset.indices={2 * iters}',
                    'train_dataloader.batch_size=2', 'default_hooks.logger.interval=1',
                    'randomness.seed=0']
            if rel_cfg.split('/')[-2] not in ('toy', 'ks_detr', 'dac_detr'):
                opts.append('model.teacher_ckpt=None')  # a distiller: random teacher
            res = run_tool(['python', 'tools/train.py', osp.join(CONFIGS, rel_cfg),
                            '--work-dir', str(work), '--cfg-options'] + opts +
                           toy_data_cfg_options(toy_data_root))
            ckpt = work / 'epoch_1.pth'
            assert res.returncode == 0 and ckpt.is_file(), res.stderr[-3000:]
            cache[key] = str(ckpt)
        return cache[key]

    return train
