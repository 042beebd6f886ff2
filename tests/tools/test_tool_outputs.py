"""tools/pth_transfer.py and tools/misc/merge_weight.py as processes: a ``kill -9`` mid-write
keeps the previous output byte-identical, an output that is an input is refused, a missing,
read-only or full output folder gives one ``<tool>: error:`` line and leaves no temporary file,
and a hostile input never runs (also with TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1)."""
import os
import os.path as osp
import signal
import sys

import pytest
import torch
from output_helpers import (assert_one_line_error, hostile_payloads, kill_during_write,
                            run_limited, temp_files, with_file_size_limit,
                            without_write_permission)
from toy_helpers import ROOT, run_tool

sys.path.insert(0, osp.join(ROOT, 'tools'))
import merge_weight  # noqa: E402  (tools/misc is on sys.path through conftest)
import pth_transfer  # noqa: E402

BIG = 16 * 2**20  # float32 elements: a 64 MiB tensor, so the write takes a while


def _pth_transfer(folder, numel, payload=None):
    ckpt = str(folder / 'distill.pth')
    meta = {} if payload is None else {'x': payload}
    torch.save({'meta': meta, 'state_dict': {'architecture.w': torch.randn(numel),
                                             'teacher.w': torch.zeros(1)}}, ckpt)
    return [ckpt], lambda out: ['tools/pth_transfer.py', '--ckpt_path', ckpt, '--output_path',
                                out]


def _merge_weight(folder, numel, payload=None):
    student, teacher = str(folder / 'student.pth'), str(folder / 'teacher.pth')
    torch.save({'conv.weight': torch.randn(numel)}, student)
    extra = {} if payload is None else {'meta': {'x': payload}}
    torch.save(dict(state_dict={'level_embed': torch.randn(4, 8)}, **extra), teacher)
    return [student, teacher], lambda out: ['tools/misc/merge_weight.py', '--student', student,
                                            '--teacher', teacher, '--out', out]


TOOLS = {'pth_transfer.py': (_pth_transfer, pth_transfer.main),
         'merge_weight.py': (_merge_weight, merge_weight.main)}


def _previous_output(folder):
    """A good output of an earlier run that a failed run must leave as it is."""
    out = folder / 'out.pth'
    torch.save({'meta': {'run': 1}, 'state_dict': {'w': torch.arange(5.)}}, out)
    return str(out), out.read_bytes()


def _python(args):
    return [sys.executable] + args


@pytest.mark.parametrize('tool', TOOLS)
def test_kill_during_write_keeps_previous_output(tmp_path, tool):
    make, _ = TOOLS[tool]
    _, command = make(tmp_path, BIG)
    out, before = _previous_output(tmp_path)
    returncode = kill_during_write(_python(command(out)), out)
    assert returncode == -signal.SIGKILL, 'the tool finished before it could be killed'
    with open(out, 'rb') as f:
        assert f.read() == before  # byte-identical: never a partial file under the name
    assert torch.load(out, weights_only=True)['meta'] == {'run': 1}


@pytest.mark.parametrize('tool', TOOLS)
def test_output_that_is_an_input_is_refused(tmp_path, tool):
    make, main = TOOLS[tool]
    inputs, command = make(tmp_path, 16)
    for path in inputs:
        original = open(path, 'rb').read()
        os.link(path, str(tmp_path / 'hard_link.pth'))
        os.symlink(path, str(tmp_path / 'sym_link.pth'))
        for out in (path, str(tmp_path / 'hard_link.pth'), str(tmp_path / 'sym_link.pth')):
            with pytest.raises(SystemExit) as info:
                main(command(out)[1:])
            msg = str(info.value.code)
            assert msg.startswith(f'{tool}: error: output "{out}" is also an input'), msg
        assert open(path, 'rb').read() == original
        os.remove(str(tmp_path / 'hard_link.pth'))
        os.remove(str(tmp_path / 'sym_link.pth'))
    assert temp_files(tmp_path) == []


@pytest.mark.parametrize('tool', TOOLS)
def test_missing_output_folder(tmp_path, tool):
    make, main = TOOLS[tool]
    _, command = make(tmp_path, 16)
    with pytest.raises(SystemExit) as info:
        main(command(str(tmp_path / 'no_such_dir' / 'out.pth'))[1:])
    assert str(info.value.code) == (f'{tool}: error: output folder '
                                    f'"{tmp_path / "no_such_dir"}" does not exist: create it first')


@pytest.mark.parametrize('tool', TOOLS)
def test_read_only_output_folder(tmp_path, tool):
    make, _ = TOOLS[tool]
    _, command = make(tmp_path, 16)
    out_dir = tmp_path / 'read_only'
    out_dir.mkdir()
    out, before = _previous_output(out_dir)
    out_dir.chmod(0o555)
    try:
        res = run_limited(_python(command(out)), without_write_permission())
    finally:
        out_dir.chmod(0o755)
    assert_one_line_error(res, tool, f'cannot write "{out}": no write permission in "{out_dir}"')
    assert open(out, 'rb').read() == before and temp_files(out_dir) == []


@pytest.mark.parametrize('tool', TOOLS)
def test_full_disk(tmp_path, tool):
    make, _ = TOOLS[tool]
    _, command = make(tmp_path, 2**20)  # a 4 MiB output under a 1 MiB file-size limit
    out, before = _previous_output(tmp_path)
    res = run_limited(_python(command(out)), with_file_size_limit(2**20))
    assert_one_line_error(res, tool, f'cannot write "{out}": disk full / file too large')
    assert open(out, 'rb').read() == before and temp_files(tmp_path) == []


@pytest.mark.parametrize('tool,culprit', [('pth_transfer.py', 'subprocess.Popen'),
                                          ('merge_weight.py', 'posix.system')])
def test_hostile_input_never_runs(tmp_path, tool, culprit):
    make, _ = TOOLS[tool]
    marker = str(tmp_path / 'pwned')
    _, command = make(tmp_path, 16, payload=hostile_payloads(marker)[culprit])
    out = str(tmp_path / 'out.pth')
    res = run_tool(_python(command(out)), env={'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD': '1'})
    assert_one_line_error(res, tool, f'refused: the file would run code ({culprit})')
    assert not osp.exists(marker) and not osp.exists(out) and temp_files(tmp_path) == []
