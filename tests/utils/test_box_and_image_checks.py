"""Before a run, boxes mmdet would drop without a word (degenerate, NaN) are counted with the
first image ids (an error when none is left), and every image file must exist and decode (one
line naming the files) - at train and at test time."""
import json
import math
import os
import shutil
import sys

import pytest
from toy_helpers import CONFIGS, load_toy_config, run_tool, save_random_checkpoint, \
    toy_data_cfg_options

from mmdet_ksdetr.utils import InputError, check_data_paths
from mmdet_ksdetr.utils.data_checks import box_problems

TOY = 'toy/deformable-detr_tiny-r18_1xb2-12e_toy.py'


@pytest.fixture
def data_copy(toy_data_root, tmp_path):
    root = str(tmp_path / 'toy') + '/'
    shutil.copytree(toy_data_root, root)
    return root


def _edit(root, split, edit):
    path = os.path.join(root, 'annotations', f'instances_{split}.json')
    with open(path) as f:
        coco = json.load(f)
    edit(coco)
    with open(path, 'w') as f:
        json.dump(coco, f)  # NaN is written as the NaN literal, as Python writes it
    return coco


def _check(root, loaders=('train_dataloader', ), check_images=True):
    check_data_paths(load_toy_config(TOY, root), loaders, check_images=check_images)


def test_box_problems_follow_mmdets_rules():
    coco = dict(images=[dict(id=1, width=100, height=50)],
                categories=[dict(id=1, name='a')],
                annotations=[dict(image_id=1, category_id=1, bbox=b, area=10) for b in (
                    [0, 0, 10, 10], [0, 0, 0, 10], [0, 0, 10, -3], [0, 0, 0.5, 10],
                    [math.nan, 0, 10, 10], [0, 0, math.inf, 10], [200, 0, 10, 10], [1, 2, 3])])
    valid, problems = box_problems(coco, ('a', ))
    assert valid == 1
    assert problems == {'degenerate': [1, 1, 1, 1], 'non-finite': [1, 1, 1]}


def test_some_degenerate_boxes_are_a_warning_with_counts(data_copy, caplog):
    def edit(coco):
        coco['annotations'][0]['bbox'][2] = 0
        coco['annotations'][1]['bbox'][3] = -4
        coco['annotations'][2]['bbox'][0] = float('nan')
    coco = _edit(data_copy, 'train', edit)
    ids = [a['image_id'] for a in coco['annotations'][:3]]
    from mmdet_ksdetr.utils.data_checks import check_coco_annotations
    ds = load_toy_config(TOY, data_copy).train_dataloader.dataset
    lines = check_coco_annotations('train_dataloader', ds, os.path.join(
        data_copy, 'annotations', 'instances_train.json'))
    n = len(coco['annotations'])
    first = ', '.join(str(i) for i in dict.fromkeys(ids[:2]))
    assert lines == [f'train_dataloader: 3 of {n} boxes in "{data_copy}annotations/'
                     f'instances_train.json" are dropped by mmdet: 2 degenerate (width or '
                     f'height < 1 px, zero area or outside the image), first image ids: '
                     f'{first}; 1 non-finite (NaN/inf or not 4 numbers), first image ids: '
                     f'{ids[2]}. Fix or remove those annotations']


def test_no_valid_box_is_an_error(data_copy):
    def edit(coco):
        for ann in coco['annotations']:
            ann['bbox'][2] = 0.0
    _edit(data_copy, 'train', edit)
    with pytest.raises(InputError, match=r'train_dataloader: none of the \d+ boxes in .* is '
                                         r'valid \(\d+ degenerate .*training would see no'):
        _check(data_copy)


def test_missing_and_empty_images_are_one_error(data_copy):
    with open(os.path.join(data_copy, 'annotations', 'instances_train.json')) as f:
        names = [img['file_name'] for img in json.load(f)['images']]
    os.remove(os.path.join(data_copy, 'train', names[0]))
    open(os.path.join(data_copy, 'train', names[1]), 'wb').close()  # zero bytes
    with open(os.path.join(data_copy, 'train', names[2]), 'wb') as f:
        f.write(b'not an image at all')
    with pytest.raises(InputError) as e:
        _check(data_copy)
    assert str(e.value) == (
        f'train_dataloader: 3 of {len(names)} images listed in "{data_copy}annotations/'
        f'instances_train.json" cannot be read under "{data_copy}train/" (missing: {names[0]}; '
        f'unreadable: {names[1]} (0 bytes), {names[2]} (not a decodable image)); restore them '
        f'or remove them from the json')
    with pytest.raises(InputError, match=rf'1 of {len(names)} images .*missing: {names[0]}\)'):
        _check(data_copy, check_images=False)  # existence is always checked


def test_clean_toy_set_passes(data_copy):
    _check(data_copy, ('train_dataloader', 'val_dataloader'))


def test_test_tool_names_an_empty_image(data_copy, tmp_path):
    with open(os.path.join(data_copy, 'annotations', 'instances_val.json')) as f:
        name = json.load(f)['images'][3]['file_name']
    open(os.path.join(data_copy, 'val', name), 'wb').close()
    ckpt = save_random_checkpoint(TOY, str(tmp_path / 'ckpt.pth'))
    res = run_tool([sys.executable, 'tools/test.py', f'{CONFIGS}/{TOY}', ckpt, '--work-dir',
                    str(tmp_path / 'w'), '--cfg-options'] + toy_data_cfg_options(data_copy))
    assert res.returncode != 0
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith('test.py: error: test_dataloader: 1 of ') and \
        f'unreadable: {name} (0 bytes)' in last, res.stderr[-2000:]
    assert 'Traceback' not in res.stderr


def test_train_tool_stops_when_every_box_is_degenerate(data_copy, tmp_path):
    def edit(coco):
        for ann in coco['annotations']:
            ann['bbox'][3] = 0.0
    _edit(data_copy, 'train', edit)
    res = run_tool([sys.executable, 'tools/train.py', f'{CONFIGS}/{TOY}', '--work-dir',
                    str(tmp_path / 'w'), '--cfg-options', 'train_cfg.max_epochs=1'] +
                   toy_data_cfg_options(data_copy))
    assert res.returncode != 0
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith('train.py: error: train_dataloader: none of the '), res.stderr[-2000:]
    assert 'Traceback' not in res.stderr and not os.path.exists(tmp_path / 'w' / 'epoch_1.pth')
