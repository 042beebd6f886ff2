"""DN-DETR and DN-Deformable-DETR (DenoisingDetectorMixin): denoising queries in training
only, their count and mask reach the decoder and head, DN losses per layer, predict without GT,
clear errors for bad ``dn_cfg``."""
import copy

import pytest
import torch
from toy_helpers import build_toy, toy_inputs

from mmdet_ksdetr.models.dn_detr.denoising_detector_mixin import DenoisingDetectorMixin
from mmdet_ksdetr.models.dn_detr.dn_query_generator import DnQueryGenerator

CONFIGS = {'dn': 'toy/dn-detr_tiny-r18_1xb2-12e_toy.py',
           'dn_deformable': 'toy/dn-deformable-detr_tiny-r18_1xb2-12e_toy.py'}


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_denoising_queries_in_training_only(name, toy_data_root, monkeypatch):
    cfg, model = build_toy(CONFIGS[name], toy_data_root, quiet=False)
    assert isinstance(model, DenoisingDetectorMixin)
    assert isinstance(model.dn_query_generator, DnQueryGenerator)
    data = toy_inputs(model, cfg, toy_data_root)
    samples = data['data_samples']
    max_gt = max(len(s.gt_instances) for s in samples)
    assert max_gt > 0
    num_groups = cfg.model.dn_cfg.group_cfg.num_groups
    model.train()
    torch.manual_seed(1)
    head_in = model.forward_transformer(model.extract_feat(data['inputs']), samples)
    num_dn = max_gt * num_groups
    assert head_in['dn_meta'] == dict(num_denoising_queries=num_dn,
                                      num_denoising_groups=num_groups)
    assert head_in['hidden_states'].shape[2] == num_dn + model.num_queries
    losses = model.loss(data['inputs'], samples)
    layers = [f'd{i}.' for i in range(model.decoder.num_layers - 1)] + ['']
    for prefix in layers:
        for kind in ('cls', 'bbox', 'iou'):
            assert torch.isfinite(losses[f'{prefix}dn_loss_{kind}']).all()
            assert f'{prefix}loss_{kind}' in losses

    def no_dn(*args, **kwargs):
        raise AssertionError('predict() built denoising queries')

    monkeypatch.setattr(DnQueryGenerator, '__call__', no_dn)
    eval_samples = copy.deepcopy(samples)
    for s in eval_samples:
        del s.gt_instances
    model.eval()
    with torch.no_grad():
        head_in = model.forward_transformer(model.extract_feat(data['inputs']), eval_samples)
        results = model.predict(data['inputs'], eval_samples)
    assert 'dn_meta' not in head_in
    assert head_in['hidden_states'].shape[2] == model.num_queries
    assert len(results) == 2 and len(results[0].pred_instances.scores) > 0


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_dn_cfg_must_not_set_detector_values(name, toy_data_root):
    with pytest.raises(ValueError, match='taken from the detector'):
        build_toy(CONFIGS[name], toy_data_root, quiet=False, dn_cfg=dict(num_classes=3))
