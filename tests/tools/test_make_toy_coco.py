"""The toy COCO generator: deterministic, valid COCO, the variety the tests rely on."""
import filecmp
import json
import os
import os.path as osp

import pytest
from make_toy_coco import main, make_toy_coco
from pycocotools.coco import COCO


def test_deterministic_and_valid(tmp_path):
    a, b = str(tmp_path / 'a'), str(tmp_path / 'b')
    make_toy_coco(a, num_train=12, num_val=6, seed=3)
    make_toy_coco(b, num_train=12, num_val=6, seed=3)
    for rel in ('annotations/instances_train.json', 'annotations/instances_val.json',
                'train/000000.png', 'train/000011.png', 'val/000005.png'):
        assert filecmp.cmp(osp.join(a, rel), osp.join(b, rel), shallow=False), rel
    make_toy_coco(b, num_train=12, num_val=6, seed=4)
    assert not filecmp.cmp(osp.join(a, 'train/000000.png'), osp.join(b, 'train/000000.png'),
                           shallow=False)

    coco = COCO(osp.join(a, 'annotations/instances_train.json'))
    assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == [
        'rectangle', 'ellipse', 'triangle']
    assert len(coco.getImgIds()) == 12
    assert len(os.listdir(osp.join(a, 'train'))) == 12


def test_variety(tmp_path):
    root = str(tmp_path / 'toy')
    make_toy_coco(root, num_train=64, num_val=8, seed=0)
    with open(osp.join(root, 'annotations/instances_train.json')) as f:
        coco = json.load(f)
    images = {im['id']: im for im in coco['images']}
    sizes = {(im['width'], im['height']) for im in images.values()}
    assert len(sizes) >= 3 and max(max(s) for s in sizes) <= 160
    per_image = {i: [] for i in images}
    for ann in coco['annotations']:
        x, y, w, h = ann['bbox']
        im = images[ann['image_id']]
        assert w > 0 and h > 0 and x >= 0 and y >= 0
        assert x + w <= im['width'] and y + h <= im['height']
        per_image[ann['image_id']].append(ann)
    assert any(len(v) == 0 for v in per_image.values()), 'no empty image'
    assert len({a['category_id'] for a in coco['annotations']}) == 3

    def overlap(a, b):
        ax, ay, aw, ah = a['bbox']
        bx, by, bw, bh = b['bbox']
        return min(ax + aw, bx + bw) > max(ax, bx) and min(ay + ah, by + bh) > max(ay, by)

    assert any(overlap(a, b) for anns in per_image.values() for i, a in enumerate(anns)
               for b in anns[i + 1:]), 'no overlapping boxes'


def test_bad_arguments(tmp_path):
    with pytest.raises(SystemExit, match='at least 1'):
        main(['--out', str(tmp_path / 'x'), '--num-train', '0'])
    assert not osp.exists(tmp_path / 'x')
