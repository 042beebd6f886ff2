"""demo/image_demo.py (SafeDetInferencer): draws and saves predictions of a toy checkpoint;
refuses a checkpoint of another architecture with the keys that differ."""
import glob
import json
import os.path as osp

import pytest
from toy_helpers import CONFIGS, ROOT, run_tool, save_random_checkpoint

DEFORMABLE = 'toy/deformable-detr_tiny-r18_1xb2-12e_toy.py'
DAB = 'toy/dab-detr_tiny-r18_1xb2-12e_toy.py'


@pytest.fixture(scope='module')
def deformable_ckpt(tmp_path_factory):
    return save_random_checkpoint(DEFORMABLE, str(tmp_path_factory.mktemp('ckpt') / 'def.pth'))


def test_demo_writes_drawing_and_boxes(deformable_ckpt, toy_data_root, tmp_path):
    img = sorted(glob.glob(osp.join(toy_data_root, 'val', '*.jpg')) +
                 glob.glob(osp.join(toy_data_root, 'val', '*.png')))[0]
    out = run_tool(['python', 'demo/image_demo.py', img, osp.join(CONFIGS, DEFORMABLE),
                    '--weights', deformable_ckpt, '--out-dir', str(tmp_path / 'out'),
                    '--pred-score-thr', '0'])
    assert out.returncode == 0, out.stderr[-3000:]
    stem = osp.splitext(osp.basename(img))[0]
    vis = tmp_path / 'out' / 'vis' / osp.basename(img)
    assert vis.is_file() and vis.stat().st_size > 0
    preds = json.loads((tmp_path / 'out' / 'preds' / f'{stem}.json').read_text())
    assert len(preds['bboxes']) == len(preds['scores']) == len(preds['labels']) > 0
    assert all(len(b) == 4 for b in preds['bboxes'])


def test_demo_refuses_checkpoint_of_another_architecture(toy_data_root, tmp_path):
    ckpt = save_random_checkpoint(DAB, str(tmp_path / 'dab.pth'))
    img = sorted(glob.glob(osp.join(toy_data_root, 'val', '*')))[0]
    out = run_tool(['python', 'demo/image_demo.py', img, osp.join(CONFIGS, DEFORMABLE),
                    '--weights', ckpt, '--out-dir', str(tmp_path / 'out')], cwd=ROOT)
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith('image_demo.py: error:') and 'does not fit the model' in last, last
    assert 'missing keys' in last and 'unexpected keys' in last
