"""KS-DETR release checkpoints (format ``ks-detr``): KS-DAB-DETR R50's key set (built by the
release's own code, tests/data/releases/ks_detr_ks-dab-detr_r50.json) is detected as ks-detr,
its teacher streams are dropped with a reason, and the rest loads strictly into the stock
baseline (DetrexDABDETR); a shrunken variant predicts; wrong inputs stop with one line."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from converters.test_detrex_dab import build, release_state, run_predict_and_tensor, shrunken

from mmdet_ksdetr.converters.release import (ReleaseConversionError, convert_checkpoint,
                                             detect_format, registered_formats)
from mmdet_ksdetr.converters.release.ks_detr import convert_ks_detr, detect_ks_detr

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FIXTURE = osp.join(ROOT, 'tests/data/releases/ks_detr_ks-dab-detr_r50.json')
DAB_FIXTURE = osp.join(ROOT, 'tests/data/releases/detrex_dab-detr_r50.json')
CONFIG = osp.join(ROOT, 'configs/ks_detr/release/ks-dab-detr-release_r50_8xb2-50e_coco.py')
IN_PROJ = 'transformer.encoder.layers.5.attentions.0.attn.in_proj_weight'


def test_detected_before_detrex_and_loads_strictly():
    state = release_state(FIXTURE)
    assert detect_ks_detr(state) and not detect_ks_detr(release_state(DAB_FIXTURE))
    assert detect_format(state) == 'ks-detr'
    assert registered_formats().index('ks-detr') == 0
    report = []
    out = convert_checkpoint(dict(model=state), cfg=CONFIG, report=report)
    assert out['meta']['release_source'] == 'ks-detr'
    assert out['meta']['release_architecture'] == 'KS-DAB-DETR'
    model, _ = build(CONFIG)
    model.load_state_dict(out['state_dict'], strict=True)
    new, rep = out['state_dict'], report[0]
    # the student q, k, v are the first 3E rows of the 6E in_proj; the rest is teacher
    assert torch.equal(new['encoder.layers.5.self_attn.attn.in_proj_weight'],
                       state[IN_PROJ][:768])
    assert f'{IN_PROJ}[768:1536]' in rep.dropped
    assert {k for k in rep.dropped if k.startswith('ksgt.')} == \
        {k for k in state if k.startswith('ksgt.')}
    assert all('teacher' in why for k, why in rep.dropped.items()
               if k.startswith(('ksgt.', IN_PROJ)))


def test_shrunken_variant_predicts():
    state = release_state(FIXTURE, layers=2, queries=16)
    # the KS layer is the last encoder layer: in a 2-layer variant, layer 1
    state['transformer.encoder.layers.1.attentions.0.attn.in_proj_weight'] = \
        torch.randn(1536, 256, generator=torch.Generator().manual_seed(1)) * 0.05
    state['transformer.encoder.layers.1.attentions.0.attn.in_proj_bias'] = torch.zeros(1536)
    model, cfg = build(CONFIG, **shrunken())
    new, rep = convert_ks_detr(state, cfg)
    model.load_state_dict(new, strict=True)
    cls, box, res = run_predict_and_tensor(model)
    assert cls.shape == (2, 2, 16, 80) and box.shape == (2, 2, 16, 4) and len(res) == 2


def test_wrong_inputs_are_one_line():
    state = release_state(FIXTURE)
    cfg = Config.fromfile(CONFIG)
    cfg.model.type = 'DINO'
    with pytest.raises(ReleaseConversionError,
                       match='KS-DAB-DETR checkpoint, but the config builds DINO'):
        convert_ks_detr(state, cfg)
    cfg = Config.fromfile(CONFIG)
    cfg.model.bbox_head.num_classes = 91
    with pytest.raises(ReleaseConversionError, match=r'80 classes .*num_classes=91') as e:
        convert_checkpoint(dict(model=state), source='ks-detr', cfg=cfg)
    assert '\n' not in str(e.value)
    bad = dict(state)
    bad[IN_PROJ] = torch.zeros(1000, 256)
    with pytest.raises(ReleaseConversionError, match='1000 rows'):
        convert_ks_detr(bad, None)
    with pytest.raises(ReleaseConversionError, match='not a known release checkpoint'):
        convert_checkpoint(dict(state_dict={'backbone.conv1.weight': torch.zeros(1)}))
