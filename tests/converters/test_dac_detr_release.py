"""The ``dac-detr`` release format: the key set of the released R50 model (names and shapes as
the release code builds them, tests/data/releases/dac_detr_r50_keys.json) filled with seeded
random values converts and loads strictly into the model of the R50 release config; class rows
are re-indexed by COCO category id; Swin patch merging is reordered; wrong inputs stop with one
line."""
import json
import os.path as osp

import pytest
import torch
from mmdet.models.backbones.swin import PatchMerging
from mmdet.registry import MODELS
from toy_helpers import CONFIGS, load_toy_config

from mmdet_ksdetr.converters.release import (ReleaseConversionError, convert_checkpoint,
                                             detect_format)
from mmdet_ksdetr.converters.release.dac_detr import COCO_CATEGORY_IDS
from mmdet_ksdetr.converters.release.swin import unfold_order as _unfold_order

KEYS = osp.join(osp.dirname(osp.dirname(__file__)), 'data', 'releases', 'dac_detr_r50_keys.json')
R50_CFG = 'dac_detr/release/dac-detr-cdn-ice-release_r50_8xb2-12e_coco.py'


def _release_state(seed=0):
    """The release's R50 state dict with seeded random values; the decoder's second names of
    the heads hold the same tensors, as in a saved release checkpoint."""
    with open(KEYS) as f:
        shapes = json.load(f)['keys']
    g = torch.Generator().manual_seed(seed)
    state = {k: torch.randn(s, generator=g) for k, s in shapes.items()}
    for k in shapes:
        if k.startswith('transformer.decoder.class_embed') or \
                k.startswith('transformer.decoder.bbox_embed'):
            state[k] = state[k[len('transformer.decoder.'):]]
    return state


def _signature_state(class_rows=91):
    """The few keys ``detect`` looks at, enough to reach the class-count checks."""
    return {'label_enc.weight': torch.zeros(92, 4), 'query_embed.weight': torch.zeros(9, 4),
            'transformer.pos_trans.weight': torch.zeros(8, 8),
            'transformer.enc_output.weight': torch.zeros(4, 4),
            'class_embed.0.weight': torch.zeros(class_rows, 4),
            'transformer.decoder.layers.0.cross_attn.sampling_offsets.weight': torch.zeros(4, 4)}


def test_r50_release_converts_and_loads_strictly():
    state = _release_state()
    assert len(state) == 632 and detect_format(state) == 'dac-detr'
    cfg = load_toy_config(R50_CFG)
    report = []
    ckpt = convert_checkpoint({'model': state}, source='auto', cfg=cfg, report=report)
    new, rep = ckpt['state_dict'], report[0]
    assert ckpt['meta']['release_source'] == 'dac-detr'
    assert rep.dropped['label_enc.weight'].startswith('CDN label encoder')
    assert len(rep.dropped) == 1 + 7 * 2 + 7 * 3 * 2  # label_enc, heads' second names
    ids = torch.tensor(COCO_CATEGORY_IDS)
    for i in range(6):  # decoder layers: row i of mmdet <- category id ids[i]
        assert torch.equal(new[f'bbox_head.cls_branches.{i}.weight'],
                           state[f'class_embed.{i}.weight'][ids])
    enc = new['bbox_head.cls_branches.6.bias']  # encoder branch: row 0 ranks the proposals
    assert enc[0] == state['class_embed.6.bias'][0]
    assert torch.equal(enc[1:], state['class_embed.6.bias'][ids[1:]])
    assert torch.equal(new['bbox_head.reg_branches.2.4.weight'],
                       state['bbox_embed.2.layers.2.weight'])
    assert torch.equal(new['neck.extra_convs.0.conv.bias'], state['input_proj.3.0.bias'])
    assert torch.equal(new['decoder.layers.1.norms.0.weight'],
                       state['transformer.decoder.layers.1.norm2.weight'])
    cfg.model.backbone.init_cfg = None  # nothing is downloaded; the weights are replaced
    MODELS.build(cfg.model).load_state_dict(new, strict=True)


def test_swin_patch_merging_order():
    """mmdet's PatchMerging with the reordered release weights computes the release's merge:
    concat of the (r0c0, r1c0, r0c1, r1c1) neighbours, LayerNorm, Linear(4C, 2C, bias=False)."""
    torch.manual_seed(0)
    c, h, w = 4, 6, 8
    merge = PatchMerging(c, 2 * c)
    w_rel, g_rel, b_rel = torch.randn(2 * c, 4 * c), torch.randn(4 * c), torch.randn(4 * c)
    with torch.no_grad():
        merge.reduction.weight.copy_(_unfold_order(w_rel))
        merge.norm.weight.copy_(_unfold_order(g_rel))
        merge.norm.bias.copy_(_unfold_order(b_rel))
    x = torch.randn(2, h * w, c)
    got, _ = merge(x, (h, w))
    grid = x.view(2, h, w, c)
    cat = torch.cat([grid[:, 0::2, 0::2], grid[:, 1::2, 0::2], grid[:, 0::2, 1::2],
                     grid[:, 1::2, 1::2]], -1).view(2, -1, 4 * c)
    want = torch.nn.functional.layer_norm(cat, (4 * c, ), g_rel, b_rel) @ w_rel.t()
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    assert (got - torch.nn.functional.layer_norm(cat, (4 * c, ), g_rel, b_rel)
            @ _unfold_order(w_rel).t()).abs().max() > 1e-2  # the order matters


def _one_line_error(match, *args, **kwargs):
    with pytest.raises(ReleaseConversionError, match=match) as err:
        convert_checkpoint(*args, **kwargs)
    assert '\n' not in str(err.value)


def test_other_format_is_refused():
    other = {'state_dict': {'backbone.conv1.weight': torch.zeros(1),
                            'bbox_head.cls_branches.0.weight': torch.zeros(1)}}
    _one_line_error('expected a dac-detr release checkpoint', other, source='dac-detr')


def test_other_class_count_is_refused():
    _one_line_error('with 81 class rows', {'model': _signature_state(81)}, source='dac-detr')
    cfg = {'bbox_head': {'num_classes': 3}}
    _one_line_error('num_classes is 3', {'model': _signature_state()}, source='dac-detr',
                    cfg=cfg)


def test_damaged_or_mismatched_checkpoint_is_refused():
    state = _signature_state()
    state['transformer.decoder.class_embed.0.weight'] = torch.ones(91, 4)
    _one_line_error('differs from "class_embed.0.weight"', {'model': state}, source='dac-detr')
    state = _signature_state()
    state['transformer.decoder.layers.0.new_thing.weight'] = torch.zeros(1)
    _one_line_error('have no mapping', {'model': state}, source='dac-detr')


def test_shipped_release_configs_exist():
    names = [f'dac-detr-{v}-release_{b}_8xb2-{e}e_coco.py' for v in ('cdn', 'cdn-ice')
             for b in ('r50', 'swin-l') for e in (12, 24)]
    assert all(osp.isfile(osp.join(CONFIGS, 'dac_detr', 'release', n)) for n in names)
