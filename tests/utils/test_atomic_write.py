"""mmdet_ksdetr.utils.checkpoint_io: one-line output errors, read-back check before the rename,
file permissions of an atomic write, refused outputs. (The real full disk, read-only folder
and kill -9 cases run the tools as processes in tests/tools/test_tool_outputs.py.)"""
import errno
import os
import stat

import pytest
import torch

from mmdet_ksdetr.utils.checkpoint_io import (OutputPathError, atomic_save, atomic_write,
                                              check_output_path, read_back_check)


@pytest.mark.parametrize('code,expected', [
    (errno.ENOSPC, 'disk full / file too large (No space left on device)'),
    (errno.EFBIG, 'disk full / file too large (File too large)'),
    (errno.EDQUOT, 'disk full / file too large (Disk quota exceeded)'),
    (errno.EACCES, 'no write permission in'),
    (errno.EROFS, 'no write permission in'),
])
def test_os_errors_become_one_line(tmp_path, code, expected):
    out = tmp_path / 'o.bin'
    out.write_bytes(b'old')

    def fail(f):
        f.write(b'partial')
        raise OSError(code, os.strerror(code))

    with pytest.raises(OutputPathError) as info:
        atomic_write(str(out), fail)
    msg = str(info.value)
    assert msg.startswith(f'cannot write "{out}": ') and expected in msg and '\n' not in msg
    assert out.read_bytes() == b'old' and os.listdir(tmp_path) == ['o.bin']


def test_failed_read_back_check_keeps_previous_output(tmp_path):
    out = tmp_path / 'o.pth'
    out.write_bytes(b'old')
    seen = []

    def check(tmp):
        seen.append(torch.load(tmp, weights_only=True))
        raise ValueError('did not read back')

    with pytest.raises(ValueError, match='did not read back'):
        atomic_save({'w': torch.ones(2)}, str(out), check=check)
    assert torch.equal(seen[0]['w'], torch.ones(2))  # the check saw the complete new file
    assert out.read_bytes() == b'old' and os.listdir(tmp_path) == ['o.pth']


def test_new_file_gets_umask_permissions_and_replacement_keeps_them(tmp_path):
    old_umask = os.umask(0o027)
    try:
        atomic_save({'w': torch.ones(1)}, str(tmp_path / 'new.pth'))
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(os.stat(tmp_path / 'new.pth').st_mode) == 0o640  # not mkstemp's 0600
    os.chmod(tmp_path / 'new.pth', 0o604)
    atomic_save({'w': torch.zeros(1)}, str(tmp_path / 'new.pth'))
    assert stat.S_IMODE(os.stat(tmp_path / 'new.pth').st_mode) == 0o604


def test_check_output_path(tmp_path):
    src = tmp_path / 'in.pth'
    src.write_bytes(b'x')
    os.link(src, tmp_path / 'hard.pth')
    for out in (src, tmp_path / 'sub' / '..' / 'in.pth', tmp_path / 'hard.pth'):
        with pytest.raises(OutputPathError, match='is also an input'):
            check_output_path(str(out), inputs=[str(src)])
    with pytest.raises(OutputPathError, match='is a folder'):
        check_output_path(str(tmp_path), inputs=[str(src)])
    with pytest.raises(OutputPathError, match='does not exist: create it first'):
        check_output_path(str(tmp_path / 'nope' / 'o.pth'))
    assert check_output_path(str(tmp_path / 'o.pth'), inputs=[str(src)]) == str(tmp_path / 'o.pth')


def test_read_back_check(tmp_path):
    out = str(tmp_path / 'o.pth')
    obj = dict(meta=dict(epoch=1), state_dict={'a': torch.ones(1), 'b': torch.zeros(2)})
    atomic_save(obj, out, check=read_back_check(obj))
    assert list(torch.load(out, weights_only=True)['state_dict']) == ['a', 'b']
    other = dict(meta=dict(epoch=1), state_dict={'a': torch.ones(1)})
    with pytest.raises(OutputPathError, match='does not read back with the same keys'):
        atomic_save(other, out, check=read_back_check(obj))
    assert list(torch.load(out, weights_only=True)['state_dict']) == ['a', 'b']
    assert os.listdir(tmp_path) == ['o.pth']
