"""detrex DAB-DETR release checkpoints -> DetrexDABDETR: the release's full R50 key set
(tests/data/releases/detrex_dab-detr_r50.json, built by detrex's own code) converts and loads
strictly; a shrunken variant predicts; wrong architecture / class count stop with one line;
the detrex anchor update (inverse_sigmoid eps 1e-3) is what the model computes."""
import json
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config

from mmdet_ksdetr.converters.release import ReleaseConversionError, convert_checkpoint
from mmdet_ksdetr.converters.release.detrex_dab import (convert_dab_detr, detect_dab_detr,
                                                        detect_dn_detr)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FIXTURE = osp.join(ROOT, 'tests/data/releases/detrex_dab-detr_r50.json')
CONFIG = osp.join(ROOT, 'configs/detrex/dab-detr-detrex_r50_8xb2-50e_coco.py')


def release_state(fixture, seed=0, layers=None, queries=None):
    """The release key set with seeded random values; optionally only ``layers`` encoder /
    decoder layers and ``queries`` anchors (a shrunken variant)."""
    keys = json.load(open(fixture))['keys']
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in sorted(keys.items()):
        m = re.match(r'transformer\.(?:encoder|decoder)\.layers\.(\d+)\.', key)
        if layers is not None and m and int(m.group(1)) >= layers:
            continue
        if queries is not None and key == 'anchor_box_embed.weight':
            shape = [queries, shape[1]]
        t = torch.rand(shape, generator=g) * 0.2 - 0.1
        state[key] = t.abs() + 0.5 if key.endswith(('running_var', 'norm.weight')) else t
    return state


def build(cfg_path, **overrides):
    import mmdet_ksdetr  # noqa: F401  (registration)
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(cfg_path)
    cfg.model.backbone.init_cfg = None
    cfg.merge_from_dict(overrides)
    return MODELS.build(cfg.model), cfg


def shrunken(layers=2, queries=16):
    return {'model.num_queries': queries, 'model.encoder.num_layers': layers,
            'model.decoder.num_layers': layers}


def run_predict_and_tensor(model):
    from mmdet.structures import DetDataSample
    model.eval()
    samples = []
    for _ in range(2):
        s = DetDataSample()
        s.set_metainfo(dict(img_shape=(64, 96), batch_input_shape=(64, 96), ori_shape=(64, 96),
                            scale_factor=(1.0, 1.0)))
        samples.append(s)
    inputs = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        cls, box = model(inputs, samples, mode='tensor')
        res = model(inputs, samples, mode='predict')
    return cls, box, res


def test_full_r50_key_set_loads_strictly():
    state = release_state(FIXTURE)
    assert detect_dab_detr(state) and not detect_dn_detr(state)
    model, cfg = build(CONFIG)
    new, report = convert_dab_detr(state, cfg)
    model.load_state_dict(new, strict=True)
    assert report.architecture == 'DAB-DETR'
    assert torch.equal(new['query_embedding.weight'], state['anchor_box_embed.weight'])
    assert torch.equal(new['decoder.layers.3.cross_attn.qpos_sine_proj.weight'],
                       state['transformer.decoder.layers.3.attentions.1.'
                             'query_pos_sine_proj.weight'])
    assert torch.equal(new['neck.convs.0.conv.bias'], state['input_proj.bias'])
    # only exact duplicates are dropped
    assert all(k.startswith('transformer.decoder.bbox_embed.') or
               k.endswith('ffns.0.activation.weight') for k in report.dropped)


def test_shrunken_variant_predicts():
    state = release_state(FIXTURE, layers=2, queries=16)
    model, cfg = build(CONFIG, **shrunken())
    new, _ = convert_dab_detr(state, cfg)
    model.load_state_dict(new, strict=True)
    cls, box, res = run_predict_and_tensor(model)
    assert cls.shape == (2, 2, 16, 80) and box.shape == (2, 2, 16, 4)
    assert len(res) == 2 and res[0].pred_instances.bboxes.shape == (300, 4)  # top-300 of 16 x 80


def test_wrong_architecture_and_class_count_are_one_line():
    state = release_state(FIXTURE)
    with pytest.raises(ReleaseConversionError, match=r'DAB-DETR, but the config builds a DINO'):
        convert_dab_detr(state, dict(type='DINO', bbox_head=dict(num_classes=80)))
    cfg = Config.fromfile(CONFIG)
    cfg.model.bbox_head.num_classes = 20
    with pytest.raises(ReleaseConversionError, match=r'80 classes .* num_classes=20') as e:
        convert_dab_detr(state, cfg)
    assert '\n' not in str(e.value)
    cfg.model.bbox_head.num_classes = 80
    cfg.model.decoder.num_layers = 3
    with pytest.raises(ReleaseConversionError, match=r'6 decoder layers.*num_layers=3'):
        convert_dab_detr(state, cfg)


def test_plain_detrex_checkpoint_is_not_ks_detr():
    state = release_state(FIXTURE, layers=1, queries=4)
    with pytest.raises(ReleaseConversionError, match='expected a ks-detr release checkpoint'):
        convert_checkpoint(dict(model=state), source='ks-detr')


def test_unmapped_key_is_named():
    state = release_state(FIXTURE, layers=1, queries=4)
    state['transformer.decoder.extra.weight'] = torch.zeros(3)
    with pytest.raises(ReleaseConversionError, match=r'no mapping for transformer\.decoder\.extra'):
        convert_dab_detr(state, None)


def _independent_anchor_update(delta, anchors, eps=1e-3):
    """detrex's anchor update, re-derived: sigmoid(delta + log(clamp(a) / clamp(1 - a)))."""
    a = anchors.clamp(0, 1)
    return (delta + torch.log(a.clamp(min=eps) / (1 - a).clamp(min=eps))).sigmoid()


class _Recorder(torch.nn.Module):
    """Calls the box branch and keeps what it returned (one entry per decoder layer)."""

    def __init__(self, branch):
        super().__init__()
        self.branch, self.outputs = branch, []

    def forward(self, x):
        out = self.branch(x)
        self.outputs.append(out.clone())
        return out


@pytest.mark.parametrize('model_type,exact', [('DetrexDABDETR', True), ('DABDETR', False)])
def test_decoder_follows_detrex_anchor_update(model_type, exact):
    """Anchors within 1e-3 of 0 / 1 (where detrex's and mmdet's default clamps differ): each
    layer's refined anchors are detrex's update of the previous ones (stock DABDETR: not)."""
    model, _ = build(CONFIG, **shrunken(), **{'model.type': model_type})
    model.eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)
        anchors = torch.full((1, 16, 4), 0.3)
        anchors[0, :8, 0] = 2e-5       # cx near 0
        anchors[0, 8:, 3] = 1 - 2e-5   # h near 1
        rec = _Recorder(model.bbox_head.fc_reg)
        _, refs = model.decoder(
            query=torch.zeros(1, 16, 256), key=torch.randn(1, 12, 256, generator=g),
            query_pos=torch.logit(anchors), key_pos=torch.randn(1, 12, 256, generator=g),
            key_padding_mask=torch.zeros(1, 12, dtype=torch.bool), reg_branches=rec)
    expected = _independent_anchor_update(rec.outputs[0][..., :4], refs[0])
    assert torch.allclose(refs[1], expected, atol=1e-6) is exact
