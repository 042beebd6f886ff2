"""demo/image_demo.py (SafeDetInferencer): draws and saves predictions of a toy checkpoint
with the class names of its meta (silently), says in one line which classes it uses for a
checkpoint without them; refuses a checkpoint of another architecture with the keys that
differ."""
import glob
import json
import os.path as osp

import pytest
from toy_helpers import CONFIGS, ROOT, TOY_CLASSES, run_tool, save_random_checkpoint

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
    said = out.stdout + out.stderr
    # the checkpoint names its classes: no word about classes, weights or registry scopes
    for noise in ('COCO', 'weights is None', 'classes', 'Failed to search registry',
                  'LocalVisBackend'):
        assert noise not in said, said[-3000:]
    stem = osp.splitext(osp.basename(img))[0]
    vis = tmp_path / 'out' / 'vis' / osp.basename(img)
    assert vis.is_file() and vis.stat().st_size > 0
    preds = json.loads((tmp_path / 'out' / 'preds' / f'{stem}.json').read_text())
    assert len(preds['bboxes']) == len(preds['scores']) == len(preds['labels']) > 0
    assert all(len(b) == 4 for b in preds['bboxes'])


def test_demo_without_classes_in_meta_says_which_it_uses(deformable_ckpt, toy_data_root,
                                                         tmp_path):
    import torch
    ckpt = torch.load(deformable_ckpt, weights_only=True)
    ckpt['meta'] = {}
    bare = str(tmp_path / 'bare.pth')
    torch.save(ckpt, bare)
    img = sorted(glob.glob(osp.join(toy_data_root, 'val', '*')))[0]
    out = run_tool(['python', 'demo/image_demo.py', img, osp.join(CONFIGS, DEFORMABLE),
                    '--weights', bare, '--out-dir', str(tmp_path / 'out')])
    assert out.returncode == 0, out.stderr[-3000:]
    said = (out.stdout + out.stderr).replace(str(tmp_path), 'TMP')
    lines = [ln for ln in said.splitlines() if 'classes' in ln]
    assert len(lines) == 1, said[-3000:]
    assert 'has no class names in its meta' in lines[0]
    assert "3 classes of the config's test set" in lines[0], lines[0]
    assert 'COCO' not in said and 'weights is None' not in said, said[-3000:]


def test_choose_classes_order():
    from mmdet_ksdetr.apis.inferencer import choose_classes
    toy = dict(classes=('a', 'b'))
    # checkpoint meta first (mmdet 3.x, then 2.x), silently
    assert choose_classes(dict(dataset_meta=dict(classes=TOY_CLASSES)), toy, 'ckpt') == \
        (TOY_CLASSES, None)
    assert choose_classes(dict(dataset_meta=dict(CLASSES=['x'])), toy, 'ckpt') == (('x',), None)
    assert choose_classes(dict(CLASSES=['y']), toy, 'ckpt') == (('y',), None)
    # else the config's test set, then COCO, each with its reason
    classes, note = choose_classes({}, toy, 'checkpoint "c.pth"')
    assert classes == ('a', 'b') and note.startswith('checkpoint "c.pth" has no class names')
    classes, note = choose_classes({}, {}, None)
    assert len(classes) == 80 and classes[0] == 'person'
    assert note.startswith('no checkpoint given') and 'COCO' in note and '\n' not in note


def test_demo_refuses_checkpoint_of_another_architecture(toy_data_root, tmp_path):
    ckpt = save_random_checkpoint(DAB, str(tmp_path / 'dab.pth'))
    img = sorted(glob.glob(osp.join(toy_data_root, 'val', '*')))[0]
    out = run_tool(['python', 'demo/image_demo.py', img, osp.join(CONFIGS, DEFORMABLE),
                    '--weights', ckpt, '--out-dir', str(tmp_path / 'out')], cwd=ROOT)
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith('image_demo.py: error:') and 'does not fit the model' in last, last
    assert 'missing keys' in last and 'unexpected keys' in last
