"""detrex model-zoo checkpoints -> mmdet: the release's full R50 key sets (names and shapes as
detrex's own code builds them, stored in tests/data/releases/detrex_*.json) filled with seeded
random values convert and load strictly into the models of configs/detrex/; wrong
inputs stop with one line naming what was found and what was expected."""
import copy
import os.path as osp

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config

from mmdet_ksdetr.converters.release import (ReleaseConversionError, convert_checkpoint,
                                             detect_format)
from mmdet_ksdetr.converters.release.detrex import detect_architecture
from converters.detrex_fixtures import link_heads, release_shapes
from toy_helpers import CONFIGS

RELEASES = {  # fixture -> (config, architecture the converter must recognise)
    'dino-4scale_r50': ('dino-4scale-detrex_r50_8xb2-12e_coco.py', 'DINO-4scale'),
    'deformable-detr_r50': ('deformable-detr-detrex_r50_8xb2-50e_coco.py', 'Deformable-DETR'),
    'deformable-detr-refine_r50': ('deformable-detr-refine-detrex_r50_8xb2-50e_coco.py',
                                   'Deformable-DETR-refine'),
    'deformable-detr-refine-twostage_r50': (
        'deformable-detr-refine-twostage-detrex_r50_8xb2-50e_coco.py',
        'Deformable-DETR-refine-twostage'),
}


def random_release(name, seed=0, fill=torch.randn):
    g = torch.Generator().manual_seed(seed)
    return link_heads({k: fill(v, generator=g) if fill is torch.randn else fill(v)
                       for k, v in release_shapes(name).items()})


def released_config(file):
    return Config.fromfile(osp.join(CONFIGS, 'detrex', file))


@pytest.mark.parametrize('name', list(RELEASES))
def test_full_release_key_set_converts_and_loads_strictly(name):
    cfg_file, arch = RELEASES[name]
    state = random_release(name)
    assert detect_format(state) == 'detrex'
    assert detect_architecture(state) + ('-4scale' if arch == 'DINO-4scale' else '') == arch
    report = []
    # the config check (names, shapes, class count) runs on the DINO conversion only: it
    # builds the model once more, which is slow for an R50 on a shared CPU
    cfg = released_config(cfg_file)
    ckpt = convert_checkpoint({'model': state}, source='detrex',
                              cfg=cfg if name.startswith('dino') else None, report=report)
    assert report[0].architecture == arch
    assert ckpt['meta']['release_source'] == 'detrex'
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(cfg.model))
    model.load_state_dict(ckpt['state_dict'], strict=True)
    out = ckpt['state_dict']
    # role checks: values land where they play the same role
    assert torch.equal(out['bbox_head.reg_branches.1.4.bias'], state['bbox_embed.1.layers.2.bias'])
    assert torch.equal(out['neck.extra_convs.0.gn.weight'], state['neck.extra_convs.0.norm.weight'])
    assert torch.equal(out['decoder.layers.1.cross_attn.sampling_offsets.weight'],
                       state['transformer.decoder.layers.1.attentions.1.sampling_offsets.weight'])
    assert torch.equal(out['encoder.layers.0.ffn.layers.1.weight'],
                       state['transformer.encoder.layers.0.ffns.0.layers.1.weight'])
    if name.startswith('dino'):
        assert torch.equal(out['query_embedding.weight'], state['transformer.tgt_embed.weight'])
        assert torch.equal(out['dn_query_generator.label_embedding.weight'],
                           state['label_enc.weight'])
        assert torch.equal(out['memory_trans_norm.bias'], state['transformer.enc_output_norm.bias'])


def _zeros(name):
    return {k: torch.zeros(v) for k, v in release_shapes(name).items()}


def _one_line(excinfo):
    msg = str(excinfo.value)
    assert '\n' not in msg
    return msg


def test_checkpoint_of_another_format_is_refused():
    other = {'backbone.0.body.conv1.weight': torch.zeros(64, 3, 7, 7),
             'transformer.level_embed': torch.zeros(4, 256),
             'class_embed.0.weight': torch.zeros(91, 256)}  # original Deformable-DETR layout
    with pytest.raises(ReleaseConversionError) as e:
        convert_checkpoint({'model': other}, source='detrex')
    msg = _one_line(e)
    assert 'expected a detrex release checkpoint' in msg and 'backbone.0.body' in msg


def test_other_architecture_with_the_dino_config_names_both():
    dab = {'backbone.stem.conv1.weight': torch.zeros(64, 3, 7, 7),
           'anchor_box_embed.weight': torch.zeros(300, 4),
           'transformer.encoder.layers.0.attentions.0.attn.in_proj_weight': torch.zeros(768, 256),
           'transformer.encoder.query_scale.layers.0.weight': torch.zeros(256, 256),
           'transformer.decoder.query_scale.layers.0.weight': torch.zeros(256, 256),
           'class_embed.weight': torch.zeros(80, 256)}
    cfg = released_config('dino-4scale-detrex_r50_8xb2-12e_coco.py')
    with pytest.raises(ReleaseConversionError) as e:
        convert_checkpoint({'model': dab}, cfg=cfg)
    msg = _one_line(e)
    assert 'found a detrex DAB-DETR checkpoint' in msg and 'builds DINO' in msg
    dn_deformable = {'denoising_generator.label_encoder.weight': torch.zeros(81, 255),
                     'tgt_embed.weight': torch.zeros(300, 255),
                     'refpoint_embed.weight': torch.zeros(300, 4),
                     'transformer.encoder.layers.0.attentions.0.sampling_offsets.weight':
                     torch.zeros(256, 256), 'class_embed.0.weight': torch.zeros(80, 256)}
    with pytest.raises(ReleaseConversionError) as e:
        convert_checkpoint({'model': dn_deformable}, cfg=cfg)
    assert 'found a detrex DN-Deformable-DETR checkpoint, but the config builds DINO' \
        in _one_line(e)
    # a Deformable-DETR release with the DINO config, and the other way round
    with pytest.raises(ReleaseConversionError) as e:
        convert_checkpoint({'model': _zeros('deformable-detr-refine_r50')}, cfg=cfg)
    assert 'found a detrex Deformable-DETR-refine checkpoint, but the config builds DINO' \
        in _one_line(e)
    two_stage_cfg = released_config('deformable-detr-refine-twostage-detrex_r50_8xb2-50e_coco.py')
    with pytest.raises(ReleaseConversionError) as e:
        convert_checkpoint({'model': _zeros('deformable-detr_r50')}, cfg=two_stage_cfg)
    assert 'found a detrex Deformable-DETR checkpoint, but the config builds ' \
        'Deformable-DETR-refine-twostage' in _one_line(e)


def test_other_class_count_is_refused():
    cfg = released_config('dino-4scale-detrex_r50_8xb2-12e_coco.py')
    cfg.model.bbox_head.num_classes = 20
    with pytest.raises(ReleaseConversionError) as e:
        convert_checkpoint({'model': _zeros('dino-4scale_r50')}, cfg=cfg)
    assert _one_line(e) == ("the detrex DINO-4scale checkpoint has 80 classes, the config's "
                            "bbox_head.num_classes is 20: set num_classes=80")


def test_unmapped_key_and_broken_head_link_are_named():
    state = _zeros('dino-4scale_r50')
    state['transformer.decoder.extra_thing.weight'] = torch.zeros(3)
    with pytest.raises(ReleaseConversionError, match='no mmdet name for '
                       '"transformer.decoder.extra_thing.weight"'):
        convert_checkpoint({'model': state})
    state = random_release('dino-4scale_r50')
    state['transformer.decoder.class_embed.2.bias'] = state['class_embed.2.bias'] + 1
    with pytest.raises(ReleaseConversionError, match='link to "class_embed.2.bias".*different'):
        convert_checkpoint({'model': state})


def test_config_that_computes_differently_is_reported(recwarn):
    cfg = released_config('dino-4scale-detrex_r50_8xb2-12e_coco.py')
    cfg.model.positional_encoding.temperature = 20  # mmdet's DINO default
    cfg.model.bbox_head.type = 'DINOHead'
    report = []
    with pytest.warns(UserWarning, match='computes differently from the detrex release'):
        convert_checkpoint({'model': _zeros('dino-4scale_r50')}, cfg=cfg, report=report)
    assert any('temperature 20' in n and 'DetrexDINOHead' in n for n in report[0].notes)
