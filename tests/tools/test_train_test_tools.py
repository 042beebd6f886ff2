"""The mmdet workflow with the repository tools: 2-process CPU training (gloo) with
checkpoints, --resume, tools/test.py printing COCO bbox mAP; clear errors on bad input."""
import os.path as osp
import re
import sys

import pytest
import torch
from toy_helpers import (CONFIGS, ROOT, TOOLS, free_port, run_tool, toy_data_cfg_options,
                         work_dir_log)

sys.path.insert(0, TOOLS)
import test as test_tool  # noqa: E402
import train as train_tool  # noqa: E402

DEF_DETR = osp.join(CONFIGS, 'toy', 'deformable-detr_tiny-r18_1xb2-12e_toy.py')


@pytest.mark.skipif(torch.cuda.is_available(), reason='CPU gloo workflow')
def test_dist_train_resume_and_test(toy_data_root, tmp_path):
    work = str(tmp_path / 'work')
    env = dict(PORT=str(free_port()), OMP_NUM_THREADS='1')
    opts = ['--cfg-options', 'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
            *toy_data_cfg_options(toy_data_root)]
    out = run_tool(['bash', osp.join(TOOLS, 'dist_train.sh'), DEF_DETR, '2', '--work-dir', work,
                    *opts], env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    log = out.stdout + out.stderr
    assert 'Distributed training: True' in work_dir_log(work)  # the environment dump
    assert log.count('UserWarning: CUDA is not available') == 2  # one per CPU process
    assert osp.isfile(osp.join(work, 'epoch_1.pth'))

    # --resume continues from the last checkpoint to epoch 2
    opts[2] = 'train_cfg.max_epochs=2'
    out = run_tool(['bash', osp.join(TOOLS, 'dist_train.sh'), DEF_DETR, '2', '--work-dir', work,
                    '--resume', *opts], env=env)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-4000:]
    assert 'resumed epoch: 1' in log
    assert osp.isfile(osp.join(work, 'epoch_2.pth'))

    out = run_tool([sys.executable, osp.join(TOOLS, 'test.py'), DEF_DETR,
                    osp.join(work, 'epoch_2.pth'), '--work-dir', str(tmp_path / 'test'),
                    '--out', str(tmp_path / 'res.pkl'), '--cfg-options',
                    *toy_data_cfg_options(toy_data_root)])
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-4000:]
    assert re.search(r'coco/bbox_mAP: \d\.\d+', log)
    assert osp.isfile(tmp_path / 'res.pkl')


# --- bad input: clear errors, not tracebacks -------------------------------------------------
def test_missing_config(capsys):
    with pytest.raises(SystemExit, match='config file "nope.py" does not exist'):
        train_tool.main(['nope.py'])
    with pytest.raises(SystemExit, match='does not exist'):
        test_tool.main(['nope.py', 'x.pth'])


def test_missing_data_root(tmp_path):
    with pytest.raises(SystemExit, match=r'data root ".*missing_root.*" does not exist.*'
                       r'make_toy_coco'):
        train_tool.main([DEF_DETR, '--work-dir', str(tmp_path), '--cfg-options',
                         f'train_dataloader.dataset.data_root={tmp_path}/missing_root/'])


def test_missing_checkpoint(toy_data_root, tmp_path):
    with pytest.raises(SystemExit, match='checkpoint ".*nothing.pth" does not exist'):
        test_tool.main([DEF_DETR, str(tmp_path / 'nothing.pth'), '--cfg-options',
                        *toy_data_cfg_options(toy_data_root)])


def test_checkpoint_that_is_not_a_checkpoint(toy_data_root, tmp_path):
    text = tmp_path / 'notes.pth'
    text.write_text('this is not a checkpoint')
    with pytest.raises(SystemExit, match='is not a PyTorch checkpoint'):
        test_tool.main([DEF_DETR, str(text), '--cfg-options', *toy_data_cfg_options(toy_data_root)])
    tensor_list = tmp_path / 'list.pth'
    torch.save([torch.ones(2)], tensor_list)
    with pytest.raises(SystemExit, match='not a model checkpoint'):
        test_tool.main([DEF_DETR, str(tensor_list), '--cfg-options',
                        *toy_data_cfg_options(toy_data_root)])


class _RunsCode:

    def __reduce__(self):
        return (print, ('unpickling ran code',))


def test_checkpoint_with_code_is_refused(toy_data_root, tmp_path, capsys):
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'w': torch.ones(1)}, 'meta': _RunsCode()}, path)
    with pytest.raises(SystemExit, match=r'refused: the file would run code \(builtins.print\)'):
        test_tool.main([DEF_DETR, str(path), '--cfg-options', *toy_data_cfg_options(toy_data_root)])
    assert 'unpickling ran code' not in capsys.readouterr().out


def test_resume_from_bad_checkpoint(toy_data_root, tmp_path):
    bad = tmp_path / 'bad.pth'
    bad.write_bytes(b'\x00' * 10)
    with pytest.raises(SystemExit, match='is not a PyTorch checkpoint'):
        train_tool.main([DEF_DETR, '--resume', str(bad), '--cfg-options',
                         *toy_data_cfg_options(toy_data_root)])


def test_dist_train_usage():
    out = run_tool(['bash', osp.join(TOOLS, 'dist_train.sh')], cwd=ROOT)
    assert out.returncode == 2 and 'usage' in out.stderr


def test_package_config_paths_resolve():
    from mmdet_ksdetr.utils import InputError
    from mmdet_ksdetr.utils.checks import check_config_path
    path = check_config_path('mmdet::deformable_detr/deformable-detr_r50_16xb2-50e_coco.py')
    assert osp.isfile(path) and path.endswith('deformable-detr_r50_16xb2-50e_coco.py')
    with pytest.raises(InputError, match='does not exist'):
        check_config_path('mmdet::deformable_detr/nope.py')
    with pytest.raises(InputError, match='not installed'):
        check_config_path('no_such_pkg_xyz::a.py')
