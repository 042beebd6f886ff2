"""tools/dist_train.sh and dist_test.sh (one launcher, tools/dist_launch.sh) pass their options
through quoted (a work dir with a space works) and refuse a process count that is not a
positive number."""
import glob
import os.path as osp
import re

import pytest
from toy_helpers import (CONFIGS, free_port, run_tool, save_random_checkpoint,
                         toy_data_cfg_options)

DEFORMABLE = osp.join(CONFIGS, 'toy/deformable-detr_tiny-r18_1xb2-12e_toy.py')


@pytest.mark.parametrize('script, args', [('dist_train.sh', [DEFORMABLE, 'two']),
                                          ('dist_test.sh', [DEFORMABLE, 'x.pth', '0'])])
def test_bad_process_count(script, args):
    out = run_tool(['bash', f'tools/{script}'] + args)
    assert out.returncode == 2
    assert 'GPUS must be a positive number of processes' in out.stderr


def test_work_dir_with_space(tmp_path, toy_data_root):
    work = tmp_path / 'my runs'
    out = run_tool(['bash', 'tools/dist_train.sh', DEFORMABLE, '1', '--work-dir', str(work),
                    '--cfg-options', 'train_cfg.max_epochs=1', 'train_cfg.val_interval=10',
                    'train_dataloader.batch_size=8'] + toy_data_cfg_options(toy_data_root),
                   env={'PORT': str(free_port())})
    assert out.returncode == 0, out.stderr[-3000:]
    assert osp.isfile(work / 'epoch_1.pth')
    assert not glob.glob(str(tmp_path / 'my')), 'the work dir was split at the space'


def test_dist_test_evaluates_a_checkpoint(tmp_path, toy_data_root):
    """dist_test.sh runs test.py under torch.distributed.run: the checkpoint and work dir (both
    with a space in their path) reach it whole and the COCO metrics come out."""
    folder = tmp_path / 'my ckpts'
    folder.mkdir()
    ckpt = save_random_checkpoint('toy/deformable-detr_tiny-r18_1xb2-12e_toy.py',
                                  str(folder / 'random.pth'))
    out = run_tool(['bash', 'tools/dist_test.sh', DEFORMABLE, ckpt, '1', '--work-dir',
                    str(tmp_path / 'my test'), '--cfg-options'] +
                   toy_data_cfg_options(toy_data_root), env={'PORT': str(free_port())})
    assert out.returncode == 0, out.stderr[-3000:]
    assert re.search(r'coco/bbox_mAP: \d', out.stdout + out.stderr)
    assert glob.glob(str(tmp_path / 'my test' / '*' / '*.log'))
