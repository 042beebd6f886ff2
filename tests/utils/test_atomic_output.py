"""checkpoint_io.atomic_output / atomic_write: the final name holds the old or the new
complete file, never a partial one."""
import os
import stat

import pytest

from mmdet_ksdetr.utils.checkpoint_io import OutputPathError, atomic_output, atomic_write


def test_success_renames_with_the_usual_mode(tmp_path):
    path = tmp_path / 'epoch_1.pth'
    with atomic_output(str(path)) as tmp:
        assert os.path.dirname(tmp) == str(tmp_path) and not path.exists()
        with open(tmp, 'wb') as f:
            f.write(b'new')
    assert path.read_bytes() == b'new'
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
    assert os.listdir(tmp_path) == ['epoch_1.pth']


def test_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / 'last_checkpoint'
    path.write_text('old')
    with pytest.raises(RuntimeError, match='boom'):
        atomic_write(str(path), lambda f: (f.write('half'), (_ for _ in ()).throw(
            RuntimeError('boom'))), mode='w')
    assert path.read_text() == 'old'
    assert os.listdir(tmp_path) == ['last_checkpoint']


def test_missing_folder_is_one_clear_error(tmp_path):
    with pytest.raises(OutputPathError, match='cannot write'):
        atomic_write(str(tmp_path / 'no' / 'file'), lambda f: f.write(b'x'))
