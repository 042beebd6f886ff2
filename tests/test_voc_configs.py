"""Every Pascal VOC distillation config is its COCO twin with VOC data: same algorithm and
distillation settings, 20-class student and teacher, VOC datasets."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config
from toy_helpers import CONFIGS

VOC_DISTILL = sorted(p for p in glob.glob(osp.join(CONFIGS, '*', '*_voc0712.py'))
                     if osp.basename(osp.dirname(p)) != 'detectors')


def _datasets(node):
    """Dataset types named anywhere in a dataloader config (ConcatDataset, RepeatDataset...)."""
    if isinstance(node, dict):
        own = [node['type']] if 'type' in node and 'ann_file' in node else []
        return own + [t for v in node.values() for t in _datasets(v)]
    if isinstance(node, (list, tuple)):
        return [t for v in node for t in _datasets(v)]
    return []


def test_voc_distillers_listed():
    names = {osp.basename(p).split('_')[0] for p in VOC_DISTILL}
    assert {'detr-distill-nocl', 'detr-distill-tprd', 'kd-detr', 'kd-detr-tprd', 'd3etr',
            'd3etr-tprd'} <= names, names


@pytest.mark.parametrize('path', VOC_DISTILL, ids=osp.basename)
def test_voc_config_is_its_coco_twin_on_voc(path):
    coco_path = path.replace('_voc0712.py', '_coco.py')
    assert osp.isfile(coco_path), f'no COCO twin for {path}'
    voc, coco = Config.fromfile(path), Config.fromfile(coco_path)
    skip = {'architecture', 'teacher', 'teacher_ckpt'}
    assert {k: v for k, v in voc.model.items() if k not in skip} == \
        {k: v for k, v in coco.model.items() if k not in skip}
    for part in ('architecture', 'teacher'):
        assert voc.model[part]['bbox_head']['num_classes'] == 20
        assert voc.model[part]['type'] == coco.model[part]['type']
    assert voc.model.architecture.backbone.depth == coco.model.architecture.backbone.depth
    assert voc.model.teacher.backbone.depth == coco.model.teacher.backbone.depth
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        types = set(_datasets(voc[loader]))
        assert types == {'VOCDataset'}, (loader, types)
