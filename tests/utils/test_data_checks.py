"""mmdet_ksdetr.utils.data_checks through check_data_paths (what tools/train.py and
tools/test.py call): annotations the config's classes drop and missing image files are warned
about with counts (the counts are what mmdet's CocoDataset really drops), a data set with no
annotation in the classes stops the run."""
import json
import logging
import os
import shutil
import sys

import pytest
from mmengine.logging import MMLogger
from toy_helpers import load_toy_config, run_tool

from mmdet_ksdetr.utils import InputError, check_data_paths
from mmdet_ksdetr.utils.data_checks import check_coco_annotations

TOY = 'toy/deformable-detr_tiny-r18_1xb2-12e_toy.py'


@pytest.fixture
def data_copy(toy_data_root, tmp_path):
    """A private copy of the toy set (the tests edit its json and delete images)."""
    root = str(tmp_path / 'toy') + '/'
    shutil.copytree(toy_data_root, root)
    return root


def _edit_train_json(root, edit):
    path = os.path.join(root, 'annotations', 'instances_train.json')
    with open(path) as f:
        coco = json.load(f)
    edit(coco)
    with open(path, 'w') as f:
        json.dump(coco, f)
    return path


class _Lines(logging.Handler):

    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def _check(root):
    """check_data_paths on the toy config pointed at ``root``: the logged warning lines."""
    cfg = load_toy_config(TOY, root)
    logger = MMLogger.get_current_instance()
    handler = _Lines()
    logger.addHandler(handler)
    try:
        check_data_paths(cfg, ('train_dataloader', 'val_dataloader'))
    finally:
        logger.removeHandler(handler)
    return handler.lines


def _mmdet_instances(root):
    from mmdet.registry import DATASETS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    ds_cfg = load_toy_config(TOY, root).train_dataloader.dataset
    ds = DATASETS.build(ds_cfg)
    return sum(len(ds.get_data_info(i)['instances']) for i in range(len(ds)))


def test_clean_toy_set_gives_no_warning(data_copy):
    assert _check(data_copy) == []


def test_categories_missing_from_classes_are_counted(data_copy):
    state = {}

    def add_categories(coco):
        coco['categories'].append(dict(id=17, name='bird'))
        anns = coco['annotations']
        state['total'] = len(anns)
        for i, ann in enumerate(anns):
            if i % 3 == 0:
                ann['category_id'] = 17   # named, but not in the config's classes
            elif i % 7 == 0:
                ann['category_id'] = 99   # not even in the json's categories
        state['bird'] = sum(a['category_id'] == 17 for a in anns)
        state['unknown'] = sum(a['category_id'] == 99 for a in anns)

    ann_path = _edit_train_json(data_copy, add_categories)
    lines = _check(data_copy)
    dropped = state['bird'] + state['unknown']
    assert lines == [
        f'train_dataloader: {dropped} of {state["total"]} annotations in "{ann_path}" are '
        f'dropped because their category is not in the config\'s classes: "bird" (id 17): '
        f'{state["bird"]}, unknown id 99: {state["unknown"]}. Add the names to '
        f'train_dataloader.dataset.metainfo.classes to keep them']
    assert _mmdet_instances(data_copy) == state['total'] - dropped  # what mmdet really keeps


def test_no_annotation_in_classes_is_an_error(data_copy):
    def rename(coco):
        for cat in coco['categories']:
            cat['name'] = 'shape_' + cat['name']

    _edit_train_json(data_copy, rename)
    with pytest.raises(InputError, match=r'^train_dataloader: none of the \d+ annotations in '
                       r'".*instances_train.json" has a category in the config\'s classes '
                       r'\[\'rectangle\', \'ellipse\', \'triangle\'\] \(its categories: '
                       r'"shape_\w+" \(id \d\): \d+, '):
        _check(data_copy)


def test_missing_images_are_named(data_copy):
    with open(os.path.join(data_copy, 'annotations', 'instances_val.json')) as f:
        images = [img['file_name'] for img in json.load(f)['images']]
    for name in images[:2]:
        os.remove(os.path.join(data_copy, 'val', name))
    with pytest.raises(InputError) as e:
        _check(data_copy)  # the loader would crash on them: stop before the run
    assert str(e.value) == (
        f'val_dataloader: 2 of {len(images)} images listed in '
        f'"{data_copy}annotations/instances_val.json" cannot be read under '
        f'"{data_copy}val/" (missing: {images[0]}, {images[1]}); restore them or remove them '
        f'from the json')


def test_long_lists_are_cut(tmp_path):
    coco = dict(images=[dict(id=i, file_name=f'{i:06d}.jpg') for i in range(20)],
                annotations=[dict(id=1, image_id=0, category_id=1, bbox=[0, 0, 2, 2])],
                categories=[dict(id=1, name='a')])
    ann = tmp_path / 'a.json'
    ann.write_text(json.dumps(coco))
    (tmp_path / 'img').mkdir()
    ds = dict(type='CocoDataset', data_root=str(tmp_path), metainfo=dict(classes=('a', )),
              data_prefix=dict(img='img/'))
    with pytest.raises(InputError) as e:
        check_coco_annotations('test_dataloader', ds, str(ann))
    line = str(e.value)
    assert '(missing: 000000.jpg, 000001.jpg, 000002.jpg, 000003.jpg, 000004.jpg, ... (15 '\
        'more));' in line, line
    assert '20 of 20 images' in line


def test_stock_coco_classes_are_the_default(tmp_path):
    """A dataset config without metainfo keeps the dataset type's classes (COCO's 80)."""
    coco = dict(images=[], annotations=[dict(id=1, image_id=0, category_id=1, bbox=[0, 0, 2, 2]),
                                        dict(id=2, image_id=0, category_id=2, bbox=[0, 0, 2, 2])],
                categories=[dict(id=1, name='person'), dict(id=2, name='rectangle')])
    ann = tmp_path / 'a.json'
    ann.write_text(json.dumps(coco))
    (line, ) = check_coco_annotations('val_dataloader', dict(type='CocoDataset'), str(ann))
    assert '1 of 2 annotations' in line and '"rectangle" (id 2): 1' in line


def test_other_dataset_types_are_not_checked(tmp_path):
    coco = dict(images=[dict(id=0, file_name='x.jpg')],
                annotations=[dict(id=1, image_id=0, category_id=1)],
                categories=[dict(id=1, name='other')])
    ann = tmp_path / 'a.json'
    ann.write_text(json.dumps(coco))
    ds = dict(type='VOCDataset', metainfo=dict(classes=('a', )))
    assert check_coco_annotations('train_dataloader', ds, str(ann)) == []
    with pytest.raises(InputError, match='none of the 1 annotations'):
        check_coco_annotations('train_dataloader', dict(ds, type='CocoDataset'), str(ann))


def test_train_tool_stops_on_a_data_set_without_classes(data_copy, tmp_path):
    def rename(coco):
        for cat in coco['categories']:
            cat['name'] = 'other'

    _edit_train_json(data_copy, rename)
    res = run_tool([sys.executable, 'tools/train.py', 'configs/' + TOY, '--work-dir',
                    str(tmp_path / 'w'), '--cfg-options',
                    f'train_dataloader.dataset.data_root={data_copy}',
                    f'val_dataloader.dataset.data_root={data_copy}'], timeout=300)
    assert res.returncode != 0
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith('train.py: error: train_dataloader: none of the '), last


# --- the missing-data hint: a command that writes what the config reads, or what to get -----
COCO_CFG = 'ks_detr/deformable-detr_r50_8xb2-12e_coco.py'


def test_missing_toy_root_hint_command_writes_what_the_config_reads(tmp_path):
    import shlex

    from make_toy_coco import main as make_toy_main
    root = str(tmp_path / 'toy_here')
    cfg = load_toy_config(TOY, data_root=root + '/')
    with pytest.raises(InputError, match='does not exist') as e:
        check_data_paths(cfg)
    line = str(e.value)
    assert '\n' not in line and 'data_root=PATH' in line
    cmd = line.split('with: ')[1].split(';')[0]
    argv = shlex.split(cmd)
    assert argv[:2] == ['python', 'tools/misc/make_toy_coco.py'], cmd
    # the very command (made small) creates every file the config reads
    make_toy_main(argv[2:] + ['--num-train', '2', '--num-val', '2'])
    check_data_paths(cfg)


def test_missing_coco_root_names_files_and_download_not_toy_command(tmp_path):
    root = str(tmp_path / 'coco')
    cfg = load_toy_config(COCO_CFG, data_root=root + '/')
    with pytest.raises(InputError) as e:
        check_data_paths(cfg, loaders=('train_dataloader',))
    line = str(e.value)
    assert 'make_toy_coco' not in line, line
    assert '"annotations/instances_train2017.json"' in line and '"train2017/"' in line, line
    assert 'https://cocodataset.org/#download' in line and '\n' not in line
    # the root exists, the annotation file does not: the same hint
    os.makedirs(root)
    with pytest.raises(InputError, match='annotation file .*instances_val2017.json" does not '
                                         'exist.*cocodataset.org'):
        check_data_paths(cfg, loaders=('val_dataloader',))
