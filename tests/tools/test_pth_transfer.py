"""tools/pth_transfer.py: student extraction from MMRazor (architecture.*) and DETRDistill
release (student.*) checkpoints, weights_only-loadable output with only meta + state_dict,
clear refusals, atomic writes, no unpickling of arbitrary objects."""
import errno
import os
import os.path as osp
import re
import sys

import numpy as np
import pytest
import torch
from output_helpers import hostile_payloads
from toy_helpers import ROOT, run_tool

sys.path.insert(0, osp.join(ROOT, 'tools'))
import pth_transfer  # noqa: E402

from mmdet_ksdetr.utils.checkpoint_io import OutputPathError  # noqa: E402


def _student():
    return {'backbone.conv1.weight': torch.randn(4, 3, 3, 3),
            'bbox_head.fc_cls.bias': torch.randn(4),
            'neck.convs.0.bn.num_batches_tracked': torch.tensor(3)}


def _mmrazor_ckpt(student):
    state = {f'architecture.{k}': v for k, v in student.items()}
    state.update({'teacher.backbone.conv1.weight': torch.randn(4, 3, 3, 3),
                  'distiller.distill_losses.loss_cl_kd.student_proj.0.weight': torch.randn(2, 2)})
    return dict(meta=dict(epoch=2, iter=16, seed=np.int64(7), lr=np.float64(1e-4),
                          dataset_meta=dict(classes=('a', 'b'), palette=[(1, 2, 3)]),
                          weird=np.zeros(3)),
                state_dict=state,
                optimizer=dict(state={}, param_groups=[dict(lr=0.1)]),
                message_hub=dict(log_scalars={}))


def test_mmrazor_checkpoint_to_plain_student(tmp_path):
    student = _student()
    torch.save(_mmrazor_ckpt(student), tmp_path / 'distill.pth')
    out = tmp_path / 'student.pth'
    res = run_tool([sys.executable, 'tools/pth_transfer.py', '--ckpt_path',
                    str(tmp_path / 'distill.pth'), '--output_path', str(out)])
    assert res.returncode == 0, res.stderr
    assert '3 student tensors' in res.stdout and '2 teacher/distiller tensors dropped' in res.stdout
    ckpt = torch.load(out, map_location='cpu', weights_only=True)  # stock loading works
    assert set(ckpt) == {'meta', 'state_dict'}
    assert list(ckpt['state_dict']) == list(student)
    for k, v in student.items():
        assert torch.equal(ckpt['state_dict'][k], v)
    meta = ckpt['meta']
    assert meta['epoch'] == 2 and meta['seed'] == 7 and type(meta['seed']) is int
    assert meta['dataset_meta']['classes'] == ['a', 'b']
    assert 'weird' not in meta  # non-primitive dropped
    assert meta['pth_transfer']['student_prefix'] == 'architecture.'
    assert [p for p in os.listdir(tmp_path) if p.startswith('.pth_transfer_')] == []


def test_release_student_prefix(tmp_path):
    student = _student()
    state = {f'student.{k}': v for k, v in student.items()}
    state['teacher.x'] = torch.zeros(1)
    state['student_neck_convs_0_conv'] = torch.zeros(2)  # the release's hook buffer
    state['distill_losses.cl_head.w'] = torch.zeros(2)
    torch.save(dict(meta=dict(epoch=50), state_dict=state, optimizer={}), tmp_path / 'r.pth')
    info = pth_transfer.transfer(str(tmp_path / 'r.pth'), str(tmp_path / 'o.pth'))
    assert info == dict(kind='distill', prefix='student.', kept=3, dropped=3)
    ckpt = torch.load(tmp_path / 'o.pth', weights_only=True)
    assert sorted(ckpt['state_dict']) == sorted(student)


def test_refuses_plain_and_bad_checkpoints(tmp_path):
    torch.save(dict(meta={}, state_dict=_student()), tmp_path / 'plain.pth')
    with pytest.raises(SystemExit) as exit_info:  # the CLI exits with a message, no traceback
        pth_transfer.main(['--ckpt_path', str(tmp_path / 'plain.pth'),
                           '--output_path', str(tmp_path / 'o.pth')])
    msg = str(exit_info.value.code)
    assert msg.startswith('pth_transfer.py: error:')
    assert 'not a distillation, KS-DETR or DAC-DETR checkpoint' in msg and 'backbone.' in msg
    assert 'already a plain detector checkpoint' in msg and '\n' not in msg
    assert not (tmp_path / 'o.pth').exists()
    (tmp_path / 'junk.pth').write_bytes(b'not a checkpoint')
    with pytest.raises(pth_transfer.TransferError, match='not a PyTorch checkpoint'):
        pth_transfer.transfer(str(tmp_path / 'junk.pth'), str(tmp_path / 'o.pth'))
    with pytest.raises(pth_transfer.TransferError, match='does not exist'):
        pth_transfer.transfer(str(tmp_path / 'missing.pth'), str(tmp_path / 'o.pth'))
    torch.save(_mmrazor_ckpt(_student()), tmp_path / 'd.pth')
    with pytest.raises(OutputPathError, match='folder .* does not exist'):
        pth_transfer.transfer(str(tmp_path / 'd.pth'), str(tmp_path / 'no_dir' / 'o.pth'))


def test_never_unpickles_arbitrary_objects(tmp_path):
    marker = str(tmp_path / 'pwned')
    ckpt = _mmrazor_ckpt(_student())
    ckpt['meta']['evil'] = hostile_payloads(marker)['posix.system']
    torch.save(ckpt, tmp_path / 'evil.pth')
    with pytest.raises(pth_transfer.TransferError,
                       match=re.escape('refused: the file would run code (posix.system)')):
        pth_transfer.transfer(str(tmp_path / 'evil.pth'), str(tmp_path / 'o.pth'))
    assert not osp.exists(marker) and not (tmp_path / 'o.pth').exists()


def test_failed_write_leaves_no_partial_output(tmp_path, monkeypatch):
    """A write that fails after the data went out (here: the disk fills up and fsync reports
    it) leaves the previous output and no temporary file."""
    torch.save(_mmrazor_ckpt(_student()), tmp_path / 'd.pth')
    out = tmp_path / 'o.pth'
    out.write_bytes(b'previous result')

    def full_disk_fsync(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, 'fsync', full_disk_fsync)
    with pytest.raises(SystemExit) as info:
        pth_transfer.main(['--ckpt_path', str(tmp_path / 'd.pth'), '--output_path', str(out)])
    assert str(info.value.code) == (
        f'pth_transfer.py: error: cannot write "{out}": disk full / file too large (No space '
        f'left on device); free space in "{tmp_path}" or write elsewhere')
    assert out.read_bytes() == b'previous result'
    assert sorted(os.listdir(tmp_path)) == ['d.pth', 'o.pth']
