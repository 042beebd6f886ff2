"""Choosing the checkpoint to auto-resume from (in-process, tiny files)."""

import pytest
import torch

from mmdet_ksdetr.engine.auto_resume import (NoUsableCheckpointError, find_resumable_checkpoint,
                                             partial_checkpoint_files)


def _ckpt(path, epoch):
    torch.save(dict(meta=dict(epoch=epoch, iter=4 * epoch), state_dict=dict(w=torch.ones(2))),
               str(path))
    return str(path)


def _truncate(path):
    with open(path, 'rb') as f:
        data = f.read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) // 2])


def test_empty_work_dir_trains_from_scratch(tmp_path):
    assert find_resumable_checkpoint(str(tmp_path)) == (None, [])
    assert find_resumable_checkpoint(str(tmp_path / 'missing')) == (None, [])


def test_newest_loadable_checkpoint_wins(tmp_path):
    for epoch in (1, 2, 10):
        _ckpt(tmp_path / f'epoch_{epoch}.pth', epoch)
    _truncate(tmp_path / 'epoch_10.pth')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_11.pth'))  # never written
    (tmp_path / 'notes.txt').write_text('not a checkpoint')
    path, notes = find_resumable_checkpoint(str(tmp_path))
    assert path == str(tmp_path / 'epoch_2.pth')  # 10 before 2: by number, not by name
    assert len(notes) == 2
    assert 'epoch_11.pth", which does not exist' in notes[0]
    assert notes[1].startswith(f'skipped "{tmp_path}/epoch_10.pth" is not a PyTorch checkpoint')


def test_last_checkpoint_target_is_tried_first(tmp_path):
    _ckpt(tmp_path / 'epoch_3.pth', 3)
    best = _ckpt(tmp_path / 'best_coco_bbox_mAP_epoch_2.pth', 2)
    (tmp_path / 'last_checkpoint').write_text(best + '\n')
    assert find_resumable_checkpoint(str(tmp_path)) == (best, [])


def test_no_usable_checkpoint_is_one_clear_error(tmp_path):
    _ckpt(tmp_path / 'epoch_1.pth', 1)
    _truncate(tmp_path / 'epoch_1.pth')
    torch.save(dict(w=torch.ones(1)), str(tmp_path / 'iter_5.pth'))  # weights only, no meta
    (tmp_path / 'last_checkpoint').write_text('')
    with pytest.raises(NoUsableCheckpointError) as e:
        find_resumable_checkpoint(str(tmp_path))
    msg = str(e.value)
    assert msg.startswith(f'cannot resume: none of the 2 checkpoint(s) in "{tmp_path}" loads')
    assert 'last_checkpoint" is empty' in msg and 'not a training checkpoint' in msg
    assert 'not a PyTorch checkpoint' in msg and '--resume CKPT' in msg


def test_partial_checkpoint_files(tmp_path):
    for name in ('.epoch_2.pth.abc123.tmp', 'epoch_1.pth', '.last_checkpoint.x.tmp'):
        (tmp_path / name).write_bytes(b'x')
    assert partial_checkpoint_files(str(tmp_path)) == [str(tmp_path / '.epoch_2.pth.abc123.tmp')]
