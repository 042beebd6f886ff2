"""flake8 (settings in setup.cfg, as mmdet's) is clean on the package, the tools and the tests."""
import os.path as osp
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def test_flake8_is_clean():
    pytest.importorskip('flake8')
    out = subprocess.run([sys.executable, '-m', 'flake8', 'mmdet_ksdetr', 'tools', 'tests',
                          'demo'], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f'flake8 found:\n{out.stdout[-4000:]}{out.stderr[-2000:]}'
