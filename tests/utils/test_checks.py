"""mmdet_ksdetr.utils.checks.load_checkpoint_safely: the one loader of every tool. Hostile
pickles never run (also with TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1) and the refusal names the
global whatever torch's wording; mmengine checkpoints with empty numpy arrays load."""
import json
import os
import pickle
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from output_helpers import hostile_payloads
from toy_helpers import ROOT

from mmdet_ksdetr.utils import InputError, load_checkpoint_safely
from mmdet_ksdetr.utils import pickle_globals

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFUSAL = 'refused: the file would run code ({})'


def _save(obj, path, fmt):
    if fmt == 'zip':
        torch.save(obj, path)
    elif fmt == 'legacy':
        torch.save(obj, path, _use_new_zipfile_serialization=False)
    else:  # a bare pickle of a newer protocol (STACK_GLOBAL instead of GLOBAL)
        with open(path, 'wb') as f:
            pickle.dump(obj, f, protocol=int(fmt[len('pickle'):]))


def _hostile_files(folder, fmt='zip'):
    marker = str(folder / 'pwned')
    files = {}
    # a bare pickle of a tensor names torch.storage._load_from_bytes, itself refused
    weight = torch.zeros(2) if fmt in ('zip', 'legacy') else [0.0, 0.0]
    for culprit, payload in hostile_payloads(marker).items():
        path = str(folder / f'{culprit}.{fmt}.pth')
        _save({'state_dict': {'w': weight}, 'meta': {'x': payload}}, path, fmt)
        files[culprit] = path
    return marker, files


def _wait_for(path, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.05)
    return os.path.exists(path)


def test_payloads_really_run_code_when_unpickled(tmp_path):
    """The hostile files used below do create the marker when loaded without weights_only."""
    marker, files = _hostile_files(tmp_path)
    for path in files.values():
        code = f'import torch; torch.load({path!r}, weights_only=False)'
        subprocess.run([sys.executable, '-c', code], env=dict(os.environ, PYTHONPATH=TESTS),
                       capture_output=True, timeout=300)
        assert _wait_for(marker), path
        os.remove(marker)


@pytest.mark.filterwarnings('ignore:Detected pickle protocol')
@pytest.mark.parametrize('fmt', ['zip', 'legacy', 'pickle4'])
def test_hostile_checkpoint_refused_naming_the_global(tmp_path, fmt):
    marker, files = _hostile_files(tmp_path, fmt)
    for culprit, path in files.items():
        with pytest.raises(InputError) as info:
            load_checkpoint_safely(path)
        msg = str(info.value)
        assert REFUSAL.format(culprit) in msg and '\n' not in msg, msg
    time.sleep(0.2)  # a Popen payload would run asynchronously
    assert not os.path.exists(marker)


_LOAD_ALL = '''
import json, sys
from mmdet_ksdetr.utils import InputError, load_checkpoint_safely
out = {}
for culprit, path in json.loads(sys.argv[1]).items():
    try:
        load_checkpoint_safely(path)
        out[culprit] = 'LOADED'
    except InputError as e:
        out[culprit] = str(e)
print(json.dumps(out))
'''


def test_force_no_weights_only_env_cannot_switch_the_check_off(tmp_path):
    marker, files = _hostile_files(tmp_path)
    env = dict(os.environ, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD='1', OMP_NUM_THREADS='1',
               PYTHONPATH=os.pathsep.join([ROOT, TESTS]))
    res = subprocess.run([sys.executable, '-c', _LOAD_ALL, json.dumps(files)], env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    messages = json.loads(res.stdout.strip().splitlines()[-1])
    for culprit in files:
        assert REFUSAL.format(culprit) in messages[culprit], messages[culprit]
    time.sleep(0.2)
    assert not os.path.exists(marker)


@pytest.mark.parametrize('wording', [
    'Unsupported global: GLOBAL {} was not an allowed global by default.',
    'Trying to load unsupported GLOBAL {} whose module posix is blocked.',
    'Can only create new object for nn.Parameter or classes allowlisted but got <class \'{}\'>',
])
def test_refused_global_from_any_wording(tmp_path, monkeypatch, wording):
    """Without the static scan (allow-list unavailable, file unreadable) the message names it;
    with it, the name comes from the file whatever the message says."""
    error = pickle.UnpicklingError('Weights only load failed.\n' + wording.format('posix.system'))
    monkeypatch.setattr(pickle_globals, '_allowed_global_names', lambda: None)
    assert pickle_globals.refused_global(str(tmp_path / 'missing.pth'), error) == 'posix.system'
    monkeypatch.undo()
    _, files = _hostile_files(tmp_path)
    quiet = pickle.UnpicklingError('refused')  # a wording that names nothing
    assert pickle_globals.refused_global(files['builtins.eval'], quiet) == 'builtins.eval'
    shortened = pickle.UnpicklingError(wording.format('eval'))  # torch drops "builtins."
    monkeypatch.setattr(pickle_globals, '_allowed_global_names', lambda: None)
    assert pickle_globals.refused_global(files['builtins.eval'], shortened) == 'builtins.eval'


def test_damaged_or_foreign_files(tmp_path):
    (tmp_path / 'junk.pth').write_bytes(b'not a checkpoint')
    with pytest.raises(InputError, match='is not a PyTorch checkpoint'):
        load_checkpoint_safely(str(tmp_path / 'junk.pth'))
    good = tmp_path / 'good.pth'
    torch.save({'state_dict': {'w': torch.zeros(1000)}}, good)
    data = good.read_bytes()
    for cut in (2000, len(data) // 2, len(data) - 20):  # torch says EINVAL for some cuts
        (tmp_path / 'cut.pth').write_bytes(data[:cut])
        with pytest.raises(InputError, match=r'^".*cut.pth" is not a PyTorch checkpoint \('):
            load_checkpoint_safely(str(tmp_path / 'cut.pth'))
    with pytest.raises(InputError, match='does not exist'):
        load_checkpoint_safely(str(tmp_path / 'missing.pth'))


def test_unreadable_file(tmp_path, monkeypatch):
    torch.save({'w': torch.zeros(1)}, tmp_path / 'ok.pth')

    def no_permission(*args, **kwargs):
        raise PermissionError(13, 'Permission denied')

    monkeypatch.setattr(torch.serialization, 'load', no_permission)
    with pytest.raises(InputError, match=r'^cannot read checkpoint ".*ok.pth": Permission denied$'):
        load_checkpoint_safely(str(tmp_path / 'ok.pth'))


def test_mmengine_checkpoint_with_empty_history_buffer_loads(tmp_path):
    """numpy pickles an empty array's data as ``bytes()``: an empty HistoryBuffer in the
    message hub (a run saved before its first log) and a plain empty array both load."""
    from mmengine.logging import HistoryBuffer, MessageHub
    hub = MessageHub.get_instance('test_checks_empty_hub')
    hub.update_scalar('train/loss', 0.5)
    hub_state = hub.state_dict()
    hub_state['log_scalars']['val/empty'] = HistoryBuffer()
    path = str(tmp_path / 'epoch_1.pth')
    torch.save(dict(meta=dict(epoch=1, empty=np.zeros((0, 3), np.float32)),
                    state_dict={'w': torch.ones(2)}, message_hub=hub_state), path)
    for mmap in (True, False):
        ckpt = load_checkpoint_safely(path, mmap=mmap)
        empty = ckpt['meta']['empty']
        assert empty.shape == (0, 3) and empty.dtype == np.float32
        buffers = ckpt['message_hub']['log_scalars']
        assert len(buffers['val/empty'].data[0]) == 0
        assert buffers['train/loss'].current() == 0.5
