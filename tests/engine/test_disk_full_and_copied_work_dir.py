"""A full disk while saving ends tools/train.py with one line; ``last_checkpoint`` is written
relative to the work dir (a copied work dir resumes from its own files, both forms are read);
the config dump in the work dir is written atomically."""
import errno
import importlib.util
import os
import os.path as osp
import shutil

import pytest
import torch
from toy_helpers import CONFIGS, TOOLS, toy_data_cfg_options

from mmdet_ksdetr.engine.auto_resume import (find_resumable_checkpoint, last_checkpoint_text,
                                             resolve_last_checkpoint)
from mmdet_ksdetr.utils.checkpoint_io import OutputPathError
from mmdet_ksdetr.utils.checks import describe_write_error

TOY = osp.join(CONFIGS, 'toy/deformable-detr_tiny-r18_1xb2-12e_toy.py')


def _train_tool():
    spec = importlib.util.spec_from_file_location('i22_train_tool', osp.join(TOOLS, 'train.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_describe_write_error_walks_the_chain():
    full = OSError(errno.ENOSPC, 'No space left on device', '/w/epoch_1.pth')
    try:
        try:
            raise full
        except OSError as e:
            raise RuntimeError('PytorchStreamWriter failed writing file') from e
    except RuntimeError as e:
        wrapped = e
    assert describe_write_error(wrapped) == (
        'cannot write "/w/epoch_1.pth": disk full / quota exceeded (No space left on device); '
        'free space or give another --work-dir')
    assert describe_write_error(OutputPathError('cannot write "x": ...')) == 'cannot write "x": ...'
    assert describe_write_error(RuntimeError('a real bug')) is None
    assert describe_write_error(FileNotFoundError(errno.ENOENT, 'gone')) is None


def test_train_tool_disk_full_while_saving_is_one_line(toy_data_root, tmp_path, monkeypatch):
    from mmengine.fileio.backends import LocalBackend

    def full_disk(self, obj, filepath):
        with open(filepath, 'wb') as f:
            f.write(obj[:10])
        raise OSError(errno.ENOSPC, 'No space left on device')

    monkeypatch.setattr(LocalBackend, 'put', full_disk)
    work = tmp_path / 'w'
    with pytest.raises(SystemExit) as e:
        _train_tool().main([TOY, '--work-dir', str(work), '--cfg-options',
                            'train_cfg.max_epochs=1', 'train_dataloader.dataset.indices=2',
                            'randomness.seed=0'] + toy_data_cfg_options(toy_data_root))
    message = str(e.value.code)
    assert message.startswith(f'train.py: error: cannot write "{work}/epoch_1.pth": disk full'), \
        message
    assert '\n' not in message
    assert not (work / 'epoch_1.pth').exists()
    assert [n for n in os.listdir(work) if n.endswith('.tmp')] == []


def _ckpt(path):
    torch.save(dict(state_dict=dict(w=torch.zeros(1)), meta=dict(epoch=1)), path)


def test_last_checkpoint_relative_and_copied_dir_resumes_its_own_files(tmp_path):
    work = tmp_path / 'run'
    work.mkdir()
    _ckpt(work / 'epoch_1.pth')
    assert last_checkpoint_text(str(work), str(work / 'epoch_1.pth')) == 'epoch_1.pth'
    assert last_checkpoint_text(str(work), str(tmp_path / 'x.pth')) == str(tmp_path / 'x.pth')
    # an old (absolute) marker in a copied work dir: the copy's own file is used
    (work / 'last_checkpoint').write_text(str(work / 'epoch_1.pth'))
    copy = tmp_path / 'copy'
    shutil.copytree(work, copy)
    path, _ = find_resumable_checkpoint(str(copy))
    assert path == str(copy / 'epoch_1.pth')
    (copy / 'last_checkpoint').write_text('epoch_1.pth')  # the new, relative form
    path, _ = find_resumable_checkpoint(str(copy))
    assert path == str(copy / 'epoch_1.pth')
    # an absolute marker pointing outside with no local twin is still honoured
    assert resolve_last_checkpoint(str(copy), str(tmp_path / 'else.pth')) == str(
        tmp_path / 'else.pth')


def test_config_dump_is_atomic(toy_data_root, tmp_path, monkeypatch):
    """A failure while the config is written leaves no partial dump in the work dir."""
    from mmengine.config import Config

    from mmdet_ksdetr.engine import build_runner
    from toy_helpers import load_toy_config
    cfg = load_toy_config('toy/deformable-detr_tiny-r18_1xb2-12e_toy.py', toy_data_root)
    cfg.work_dir = str(tmp_path / 'w')
    runner = build_runner(cfg)
    dump = osp.join(cfg.work_dir, osp.basename(cfg.filename))
    assert osp.isfile(dump)  # written when the runner was built
    os.remove(dump)

    def broken_text(self):
        raise OSError(errno.ENOSPC, 'No space left on device')

    monkeypatch.setattr(Config, 'pretty_text', property(broken_text))
    with pytest.raises(OSError):
        runner.dump_config()
    assert not osp.exists(dump)
    assert [n for n in os.listdir(cfg.work_dir) if n.endswith('.tmp')] == []
