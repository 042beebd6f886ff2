"""detrex / KS-DETR Conditional-DETR and DN-DETR releases: each R50 key set (built by the
release's own code, tests/data/releases/) is recognised through the detrex architecture table
and loads strictly into its config in configs/detrex/ and configs/ks_detr/release/; the R101
configs take an R101 release; a shrunken variant predicts; detrex's reference clamp is what
DetrexConditionalDETRHead computes."""
import os.path as osp

import pytest
import torch
from converters.test_detrex_dab import build, release_state, run_predict_and_tensor

from mmdet_ksdetr.converters.release import ReleaseConversionError, convert_checkpoint
from mmdet_ksdetr.converters.release.detrex import detect_architecture

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DATA = osp.join(ROOT, 'tests/data/releases/')
CFG = osp.join(ROOT, 'configs/')
KS = 'ks_detr/release/'
COND_CFG = CFG + 'detrex/conditional-detr-detrex_r50_8xb2-50e_coco.py'
CASES = [  # fixture, config, format, architecture
    ('detrex_conditional-detr_r50', 'detrex/conditional-detr-detrex_r50_8xb2-50e_coco', 'detrex',
     'Conditional-DETR'),
    ('detrex_dn-detr_r50', 'detrex/dn-detr-detrex_r50_8xb2-50e_coco', 'detrex', 'DN-DETR'),
    ('ks_detr_ks-conditional-detr_r50', KS + 'ks-conditional-detr-release_r50_8xb2-50e_coco',
     'ks-detr', 'KS-Conditional-DETR'),
    ('ks_detr_ks-dn-detr_r50', KS + 'ks-dn-detr-release_r50_8xb2-50e_coco', 'ks-detr',
     'KS-DN-DETR'),
]


def _r101(state):
    """The R50 key set with ResNet-101's 23 res4 blocks."""
    g = torch.Generator().manual_seed(5)
    for i in range(6, 23):
        for k in [k for k in list(state) if k.startswith('backbone.res4.5.')]:
            state[k.replace('res4.5.', f'res4.{i}.')] = torch.rand(state[k].shape,
                                                                   generator=g) + 0.5
    return state


@pytest.mark.parametrize('fixture,config,source,arch', CASES)
def test_full_r50_key_set_loads_strictly(fixture, config, source, arch):
    state = release_state(DATA + fixture + '.json')
    report = []
    out = convert_checkpoint(dict(model=state), cfg=CFG + config + '.py', report=report)
    assert out['meta']['release_source'] == source
    assert out['meta']['release_architecture'] == arch
    model, _ = build(CFG + config + '.py')
    model.load_state_dict(out['state_dict'], strict=True)
    if source == 'ks-detr':
        assert any(k.startswith('ksgt.') for k in report[0].dropped)


@pytest.mark.parametrize('fixture,config', [
    ('ks_detr_ks-conditional-detr_r50', KS + 'ks-conditional-detr-release_r101_8xb2-50e_coco'),
    ('ks_detr_ks-dn-detr_r50', KS + 'ks-dn-detr-release_r101_8xb2-50e_coco'),
    ('ks_detr_ks-dab-detr_r50', KS + 'ks-dab-detr-release_r101_8xb2-50e_coco')])
def test_r101_configs_take_r101_releases(fixture, config):
    out = convert_checkpoint(dict(model=_r101(release_state(DATA + fixture + '.json'))),
                             cfg=CFG + config + '.py')
    model, _ = build(CFG + config + '.py')
    model.load_state_dict(out['state_dict'], strict=True)


def test_detected_once_and_wrong_config_named():
    cond = release_state(DATA + 'detrex_conditional-detr_r50.json')
    dn = release_state(DATA + 'detrex_dn-detr_r50.json')
    assert detect_architecture(cond) == 'Conditional-DETR' and detect_architecture(dn) == 'DN-DETR'
    with pytest.raises(ReleaseConversionError) as e:
        convert_checkpoint(dict(model=dn), cfg=COND_CFG)
    assert '\n' not in str(e.value) and \
        'found a detrex DN-DETR checkpoint, but the config builds Conditional-DETR' in str(e.value)


def test_shrunken_conditional_predicts():
    state = release_state(DATA + 'detrex_conditional-detr_r50.json', layers=2)
    state['query_embed.weight'] = state['query_embed.weight'][:16]
    small = {'model.num_queries': 16, 'model.encoder.num_layers': 2,
             'model.decoder.num_layers': 2}
    model, cfg = build(COND_CFG, **small)
    from mmengine.config import Config
    cfg = Config.fromfile(COND_CFG)
    cfg.merge_from_dict(small)
    out = convert_checkpoint(dict(model=state), cfg=cfg)
    model.load_state_dict(out['state_dict'], strict=True)
    cls, box, res = run_predict_and_tensor(model)
    assert cls.shape == (2, 2, 16, 80) and box.shape == (2, 2, 16, 4) and len(res) == 2


def test_conditional_head_uses_detrex_clamp():
    from mmdet.registry import MODELS
    import mmdet_ksdetr.models  # noqa: F401
    torch.manual_seed(0)
    kw = dict(num_classes=4, embed_dims=32, loss_cls=dict(type='FocalLoss', use_sigmoid=True))
    ours = MODELS.build(dict(type='DetrexConditionalDETRHead', **kw))
    stock = MODELS.build(dict(type='ConditionalDETRHead', **kw))
    stock.load_state_dict(ours.state_dict())
    hidden = torch.randn(2, 1, 3, 32)
    refs = torch.tensor([[[1e-6, 0.5], [0.3, 0.7], [0.5, 1 - 1e-6]]])
    _, boxes = ours(hidden, refs)
    _, stock_boxes = stock(hidden, refs)
    delta = ours.fc_reg(ours.activate(ours.reg_ffn(hidden)))
    logit = torch.log(refs.clamp(min=1e-3) / (1 - refs).clamp(min=1e-3))
    expected = torch.cat([delta[..., :2] + logit, delta[..., 2:]], -1).sigmoid()
    torch.testing.assert_close(boxes, expected)
    assert torch.allclose(boxes[:, :, 1], stock_boxes[:, :, 1])  # away from 0 / 1: the same
    assert not torch.allclose(boxes[:, :, 0], stock_boxes[:, :, 0])


def test_other_backbone_is_refused_in_one_line():
    """ResNet and Swin are mapped (Swin: test_ks_detr_swin.py); another backbone stops."""
    state = release_state(DATA + 'ks_detr_ks-dab-detr_r50.json')
    state = {k: v for k, v in state.items() if not k.startswith('backbone.')}
    state['backbone.downsample_layers.0.0.weight'] = torch.zeros(96, 3, 4, 4)  # ConvNeXt
    with pytest.raises(ReleaseConversionError) as e:
        convert_checkpoint(dict(model=state))
    assert '\n' not in str(e.value)
    assert 'neither a detectron2 ResNet nor a Swin Transformer' in str(e.value)
    state['backbone.patch_embed.proj.weight'] = torch.zeros(96, 3, 4, 4)  # Swin, but not only
    with pytest.raises(ReleaseConversionError, match='unknown Swin backbone tensor '
                       'backbone.downsample_layers.0.0.weight'):
        convert_checkpoint(dict(model=state))
