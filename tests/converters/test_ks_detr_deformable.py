"""KS-Deformable-DETR release checkpoints (format ``ks-detr``): the release's full R50 key set
(tests/data/releases/ks_detr_ks-deformable-detr_r50.json, built by KS-DETR's own code) drops
the teacher stream of the last encoder layer and the sMLP and loads strictly into the detrex
Deformable-DETR config (R50 and R101, 12 and 50 epochs); a shrunken variant predicts
(KS-DN-Deformable-DETR: test_ks_detr_dn_deformable.py)."""
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config
from converters.test_detrex_dab import build, release_state, run_predict_and_tensor

from mmdet_ksdetr.converters.release import (ReleaseConversionError, convert_checkpoint,
                                             detect_format)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FIXTURE = osp.join(ROOT, 'tests/data/releases/ks_detr_ks-deformable-detr_r50.json')
CONFIGS = osp.join(ROOT, 'configs/ks_detr/release/')
TEACHER = re.compile(r'^transformer\.encoder\.layers\.5\.attentions\.0\.'
                     r'(attention_weights|value_proj)_teacher\.')


@pytest.mark.parametrize('name', ['ks-deformable-detr-release_r50_8xb2-12e_coco',
                                  'ks-deformable-detr-release_r50_8xb2-50e_coco'])
def test_full_r50_key_set_loads_strictly(name):
    state = release_state(FIXTURE)
    assert detect_format(state) == 'ks-detr'
    report = []
    out = convert_checkpoint(dict(model=state), cfg=CONFIGS + name + '.py', report=report)
    assert out['meta']['release_architecture'] == 'KS-Deformable-DETR'
    model, _ = build(CONFIGS + name + '.py')
    model.load_state_dict(out['state_dict'], strict=True)
    rep = report[0]
    teacher = {k for k in state if TEACHER.match(k) or k.startswith('ksgt.')}
    assert len(teacher) == 6 and set(rep.dropped) == teacher
    assert rep.mapped == len(state) - len(teacher)
    # the student projections are kept, under mmdet's names
    assert torch.equal(out['state_dict']['encoder.layers.5.self_attn.value_proj.weight'],
                       state['transformer.encoder.layers.5.attentions.0.value_proj.weight'])


def test_r101_config_takes_an_r101_release():
    state = release_state(FIXTURE)
    g = torch.Generator().manual_seed(2)
    for i in range(6, 23):  # ResNet-101: res4 has 23 blocks (R50: 6)
        for k in [k for k in list(state) if k.startswith('backbone.res4.5.')]:
            state[k.replace('res4.5.', f'res4.{i}.')] = torch.rand(state[k].shape,
                                                                   generator=g) + 0.5
    name = 'ks-deformable-detr-release_r101_8xb2-12e_coco.py'
    out = convert_checkpoint(dict(model=state), cfg=CONFIGS + name)
    model, _ = build(CONFIGS + name)
    model.load_state_dict(out['state_dict'], strict=True)
    with pytest.raises(ReleaseConversionError, match='no place in the config|does not fill'):
        convert_checkpoint(dict(model=release_state(FIXTURE)), cfg=CONFIGS + name)


def test_shrunken_variant_predicts():
    state = release_state(FIXTURE, layers=2)
    for k in list(state):  # the KS teacher projections move to the last (here: second) layer
        if k.startswith('transformer.encoder.layers.5.'):
            state[k.replace('layers.5.', 'layers.1.')] = state.pop(k)
    heads = re.compile(r'(class_embed|bbox_embed)\.(\d+)\.')
    state = {k: v for k, v in state.items()
             if not heads.match(k) or int(heads.match(k).group(2)) < 2}
    state['query_embedding.weight'] = state['query_embedding.weight'][:16]
    name = CONFIGS + 'ks-deformable-detr-release_r50_8xb2-12e_coco.py'
    small = {'model.num_queries': 16, 'model.encoder.num_layers': 2,
             'model.decoder.num_layers': 2}
    cfg = Config.fromfile(name)
    cfg.merge_from_dict(small)
    out = convert_checkpoint(dict(model=state), cfg=cfg)
    model, _ = build(name, **small)
    model.load_state_dict(out['state_dict'], strict=True)
    cls, box, res = run_predict_and_tensor(model)
    assert cls.shape == (2, 2, 16, 80) and box.shape == (2, 2, 16, 4) and len(res) == 2
