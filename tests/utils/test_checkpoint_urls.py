"""Checkpoints by http(s) URL through the one safe loader: downloaded once into torch.hub's
checkpoint folder, loaded with weights_only=True; tools/test.py accepts a URL as mmdet's does.
The server is a loopback http.server run by the test (nothing leaves the machine)."""
import functools
import http.server
import os
import sys
import threading

import pytest
import torch
from toy_helpers import CONFIGS, run_tool, save_random_checkpoint, toy_data_cfg_options

from mmdet_ksdetr.utils.checks import InputError, load_checkpoint_safely


@pytest.fixture
def served(tmp_path, monkeypatch):
    """(folder served over http, base URL); TORCH_HOME is a fresh folder."""
    root = tmp_path / 'www'
    root.mkdir()
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f'http://127.0.0.1:{server.server_address[1]}'
    finally:
        server.shutdown()
        server.server_close()


class _Hostile:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


def test_url_is_downloaded_once_and_loaded_safely(served, tmp_path):
    root, base = served
    torch.save(dict(state_dict=dict(w=torch.arange(3.))), root / 'good.pth')
    ckpt = load_checkpoint_safely(f'{base}/good.pth')
    assert torch.equal(ckpt['state_dict']['w'], torch.arange(3.))
    cached = [p.name for p in (tmp_path / 'torch_home' / 'hub' / 'checkpoints').iterdir()]
    assert len(cached) == 1 and cached[0].endswith('-good.pth')
    (root / 'good.pth').unlink()  # the second load uses the cache
    assert torch.equal(load_checkpoint_safely(f'{base}/good.pth')['state_dict']['w'],
                       torch.arange(3.))


def test_hostile_url_is_refused_and_missing_url_is_one_line(served, tmp_path, monkeypatch):
    root, base = served
    marker = tmp_path / 'pwned'
    torch.save(dict(payload=_Hostile(marker)), root / 'evil.pth')
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    with pytest.raises(InputError, match=r'refused: the file would run code \(posix.system\)'):
        load_checkpoint_safely(f'{base}/evil.pth')
    assert not marker.exists()
    with pytest.raises(InputError, match='cannot download checkpoint .*missing.pth'):
        load_checkpoint_safely(f'{base}/missing.pth')


def test_test_tool_accepts_a_url(served, tmp_path, toy_data_root):
    root, base = served
    rel = 'toy/deformable-detr_tiny-r18_1xb2-12e_toy.py'
    save_random_checkpoint(rel, str(root / 'toy.pth'))
    out = run_tool([sys.executable, 'tools/test.py', f'{CONFIGS}/{rel}', f'{base}/toy.pth',
                    '--work-dir', str(tmp_path / 'w')] + ['--cfg-options'] +
                   toy_data_cfg_options(toy_data_root),
                   env={'TORCH_HOME': os.environ['TORCH_HOME']})
    assert out.returncode == 0, out.stderr[-3000:]
    assert 'coco/bbox_mAP' in out.stdout + out.stderr


def test_same_file_name_in_two_folders_gives_two_checkpoints(served):
    """The cache is keyed by the whole URL: b/model.pth is downloaded, not a's copy reused."""
    root, base = served
    for folder, value in (('a', 1.), ('b', 2.)):
        (root / folder).mkdir()
        torch.save(dict(state_dict=dict(w=torch.full((2, ), value))), root / folder / 'model.pth')
    a = load_checkpoint_safely(f'{base}/a/model.pth')['state_dict']['w']
    b = load_checkpoint_safely(f'{base}/b/model.pth')['state_dict']['w']
    assert torch.equal(a, torch.full((2, ), 1.)) and torch.equal(b, torch.full((2, ), 2.))


def test_url_hash_is_verified_and_a_bad_file_is_not_cached(served, tmp_path):
    import hashlib
    root, base = served
    torch.save(dict(state_dict=dict(w=torch.arange(4.))), root / 'tmp.pth')
    data = (root / 'tmp.pth').read_bytes()
    good = hashlib.sha256(data).hexdigest()[:8]
    bad = 'deadbeef' if good != 'deadbeef' else '00000000'
    (root / f'model_20221202-{good}.pth').write_bytes(data)
    (root / f'model_20221202-{bad}.pth').write_bytes(data)
    ckpt = load_checkpoint_safely(f'{base}/model_20221202-{good}.pth')
    assert torch.equal(ckpt['state_dict']['w'], torch.arange(4.))
    with pytest.raises(InputError, match=rf'its sha256 does not start with {bad} .*nothing was '
                                         rf'cached'):
        load_checkpoint_safely(f'{base}/model_20221202-{bad}.pth')
    cache = tmp_path / 'torch_home' / 'hub' / 'checkpoints'
    assert [p.name for p in cache.iterdir() if bad in p.name] == []
