"""Each shim in mmdet_ksdetr/compat.py, with a control showing the stock behaviour it fixes.

Controls run in a fresh interpreter that never imports mmdet_ksdetr."""
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from mmdet_ksdetr import compat


def _python(code, env=None):
    full_env = dict(os.environ, OMP_NUM_THREADS='1')
    full_env.pop('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', None)
    if env:
        full_env.update(env)
    return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          env=full_env, timeout=300)


# --- 1. mmrazor import -----------------------------------------------------------------------
def test_mmrazor_import_fails_without_shim():
    if compat._mmrazor_quantization_importable():
        pytest.skip('this torch still has the torch.ao names mmrazor needs')
    out = _python('import mmrazor.models')
    assert out.returncode != 0
    assert 'torch>=1.13' in out.stderr or 'ImportError' in out.stderr


def test_mmrazor_models_and_engine_import_with_shim():
    out = _python('from mmdet_ksdetr import compat; compat.patch_mmrazor_quantization_import()\n'
                  'import mmrazor.models, mmrazor.engine\n'
                  'from mmrazor.registry import MODELS, LOOPS\n'
                  'assert MODELS.get("SingleTeacherDistill") is not None\n'
                  'assert MODELS.get("ConfigurableDistiller") is not None\n'
                  'assert LOOPS.get("SingleTeacherDistillValLoop") is not None\n'
                  'print("ok")')
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith('ok')


def test_quantization_stub_refuses_use():
    from mmrazor.structures.quantization import QConfigHandler
    with pytest.raises(RuntimeError, match='quantization is not available'):
        QConfigHandler()


# --- 2. weights_only loading of mmengine checkpoints -----------------------------------------
def _runner_like_checkpoint(path):
    """What mmengine's Runner.save_checkpoint writes: meta (numpy scalars), state_dict,
    message_hub with HistoryBuffer objects, optimizer, param_schedulers."""
    from mmengine.logging import MessageHub
    hub = MessageHub.get_instance('compat_test_hub')
    for i in range(3):
        hub.update_scalar('train/loss', 1.0 / (i + 1))
    hub.update_info('epoch', 1)
    model = torch.nn.Linear(2, 2)
    optim = torch.optim.AdamW(model.parameters())
    model(torch.ones(1, 2)).sum().backward()
    optim.step()
    ckpt = dict(meta=dict(epoch=1, iter=np.int64(10), seed=np.int32(0), lr=np.float64(1e-4),
                          dataset_meta=dict(classes=('a', 'b'))),
                state_dict=model.state_dict(), message_hub=hub.state_dict(),
                optimizer=optim.state_dict(),
                param_schedulers=[dict(milestones=__import__('collections').Counter({10: 1}))])
    torch.save(ckpt, path)


def test_mmengine_checkpoint_fails_weights_only_without_shim(tmp_path):
    path = str(tmp_path / 'ckpt.pth')
    _runner_like_checkpoint(path)
    out = _python(f'import torch, mmengine\ntorch.load({path!r}, weights_only=True)')
    assert out.returncode != 0
    assert 'Weights only load failed' in out.stderr


def test_mmengine_checkpoint_loads_weights_only_with_shim(tmp_path):
    path = str(tmp_path / 'ckpt.pth')
    _runner_like_checkpoint(path)
    compat.allow_mmengine_checkpoint_types()
    ckpt = torch.load(path, weights_only=True)
    assert int(ckpt['meta']['iter']) == 10
    buf = ckpt['message_hub']['log_scalars']['train/loss']
    assert buf.mean() == pytest.approx((1 + 0.5 + 1 / 3) / 3)
    # mmengine's own loader (resume / load_from / test.py path) goes through torch.load too
    from mmengine.runner import CheckpointLoader
    assert 'state_dict' in CheckpointLoader.load_checkpoint(path, map_location='cpu')


class _Evil:

    def __reduce__(self):
        return (os.system, ('echo pwned',))


def test_untrusted_pickle_still_refused(tmp_path):
    compat.allow_mmengine_checkpoint_types()
    path = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': {}, 'x': _Evil()}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)


def test_getattr_standin_only_allows_history_buffer_statistics():
    from mmengine.logging.history_buffer import HistoryBuffer
    assert compat._history_buffer_getattr(HistoryBuffer, 'mean') is HistoryBuffer.mean
    with pytest.raises(pickle.UnpicklingError):
        compat._history_buffer_getattr(np.ndarray, 'tofile')
    with pytest.raises(pickle.UnpicklingError):
        compat._history_buffer_getattr(HistoryBuffer, '__init__')


def test_bytes_standin_only_rebuilds_empty_numpy_data(tmp_path):
    """``bytes()`` (numpy's data of an empty array) loads; ``bytes(n)``, which would let a file
    allocate any amount of memory, is refused at load."""
    assert compat._empty_bytes() == b'' and compat._empty_bytes(b'ab') == b'ab'
    with pytest.raises(pickle.UnpicklingError):
        compat._empty_bytes(10**12)
    compat.allow_mmengine_checkpoint_types()
    path = str(tmp_path / 'empty.pth')
    torch.save({'a': np.zeros((0, 2), np.float32)}, path)
    assert torch.load(path, weights_only=True)['a'].shape == (0, 2)

    class _Huge:

        def __reduce__(self):
            return (bytes, (10**12, ))

    torch.save({'a': _Huge()}, path)
    with pytest.raises(pickle.UnpicklingError, match='bytes'):
        torch.load(path, weights_only=True)


# --- 3. CPU distributed ----------------------------------------------------------------------
_DIST_CODE = '''
import os, torch
{prelude}
from mmengine.dist import init_dist
from mmengine.model import MMDistributedDataParallel
init_dist('pytorch', backend='nccl')  # mmdet's default_runtime asks for nccl
assert torch.distributed.get_backend() == 'gloo'
ddp = MMDistributedDataParallel(module=torch.nn.Linear(2, 2), device_ids=[0],
                                broadcast_buffers=False)
print('ok', torch.distributed.get_world_size())
'''


def _dist_env():
    from toy_helpers import free_port
    return dict(RANK='0', LOCAL_RANK='0', WORLD_SIZE='1', MASTER_ADDR='127.0.0.1',
                MASTER_PORT=str(free_port()))


@pytest.mark.skipif(torch.cuda.is_available(), reason='CPU-only behaviour')
def test_cpu_distributed_fails_without_shim():
    out = _python(_DIST_CODE.format(prelude=''), env=_dist_env())
    assert out.returncode != 0
    assert 'cuda' in out.stderr.lower() or 'device_ids' in out.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason='CPU-only behaviour')
def test_cpu_distributed_with_shim():
    prelude = 'from mmdet_ksdetr import compat; compat.patch_cpu_distributed()'
    out = _python(_DIST_CODE.format(prelude=prelude), env=_dist_env())
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith('ok 1')


def test_apply_all_is_idempotent():
    import mmengine.dist.utils as dist_utils
    before = dist_utils._init_dist_pytorch
    compat.apply_all()
    compat.apply_all()
    assert dist_utils._init_dist_pytorch is before
    assert getattr(before, '__mmdet_ksdetr_patched__', False)


def test_attention_dropout_argument_does_not_leak_into_later_attentions():
    """mmcv 2.1.0 writes ``dropout=`` into MultiheadAttention's shared default
    ``dropout_layer`` dict; after the shim a later attention built without it has no dropout."""
    from mmcv.cnn.bricks.transformer import MultiheadAttention
    with_dropout = MultiheadAttention(16, 2, dropout=0.1)
    later = MultiheadAttention(16, 2)
    assert with_dropout.dropout_layer.p == 0.1
    assert later.dropout_layer.p == 0.0
    given = MultiheadAttention(16, 2, 0.0, 0.0, dict(type='Dropout', drop_prob=0.2))
    assert given.dropout_layer.p == 0.2


def test_config_text_is_formatted_once_and_ctrl_c_is_not_a_syntax_error(monkeypatch):
    import mmengine.config.config as config_module
    from mmengine.config import Config
    from yapf.yapflib import yapf_api
    calls = []
    format_code = yapf_api.FormatCode

    def counting(*args, **kwargs):
        calls.append(1)
        return format_code(*args, **kwargs)

    monkeypatch.setattr(yapf_api, 'FormatCode', counting)
    cfg = Config(dict(model=dict(type='Unique', seed=int.from_bytes(os.urandom(4), 'big'))))
    first = cfg.pretty_text
    assert cfg.pretty_text == first and len(calls) == 1  # every checkpoint save reads it
    cfg.model.seed += 1  # a changed config is formatted anew
    assert cfg.pretty_text != first and len(calls) == 2

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(config_module, 'FormatCode', interrupted)
    with pytest.raises(KeyboardInterrupt):
        cfg.pretty_text
