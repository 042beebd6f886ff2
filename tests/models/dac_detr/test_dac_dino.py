"""DACDINO: same parameters and predict() as stock DINO; the training forward keeps DINO's
O-stream and adds the C-stream losses; an image without GT trains."""
import os.path as osp
import re
import sys
from functools import partial

import pytest
import torch
from mmdet.models.detectors import DINO
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint
from toy_helpers import (CONFIGS, TOOLS, assert_same_detections, build_toy, free_port,
                         load_toy_config, predict_both, run_tool, slow, toy_batch,
                         toy_data_cfg_options, toy_inputs, work_dir_log)

DAC_CFG = 'toy/dac_detr/dac-dino-cdn-ice-4scale_tiny-r18_1xb2-12e_toy.py'
STOCK_CFG = 'toy/dino-4scale_tiny-r18_1xb2-12e_toy.py'
NUM_LAYERS = 2


# (cfg, model); the keys replace the config's (cfg.model.update), the build-time warnings shown
_build = partial(build_toy, quiet=False, replace=True)


@pytest.fixture(scope='module')
def dac(toy_data_root):
    return _build(DAC_CFG, toy_data_root)


def _same_params(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sorted(sa) == sorted(sb)
    assert all(sa[k].shape == sb[k].shape for k in sa)


def test_checkpoint_loads_into_stock_dino_and_predicts_the_same(dac, toy_data_root, tmp_path):
    cfg, model = dac
    assert type(model).__name__ == 'DACDINO' and isinstance(model, DINO)
    _, stock = _build(STOCK_CFG, toy_data_root, seed=1)
    assert type(stock) is DINO
    _same_params(model, stock)  # DAC adds no parameter
    ckpt = tmp_path / 'dac_dino.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    load_checkpoint(stock, str(ckpt), map_location='cpu', strict=True)

    res_dac, res_stock = predict_both(model, stock, toy_batch(cfg, toy_data_root, 'val', 3))
    assert_same_detections(res_dac, res_stock, num=30)


def test_training_forward_o_stream_is_dino_and_c_stream_is_extra(dac, toy_data_root):
    cfg, model = dac
    _, stock = _build(STOCK_CFG, toy_data_root)
    stock.load_state_dict(model.state_dict())
    # same CDN noise scale so both consume the RNG identically
    stock.dn_query_generator.box_noise_scale = model.dn_query_generator.box_noise_scale
    model.train()
    stock.train()
    data = toy_inputs(model, cfg, toy_data_root)
    with torch.no_grad():
        torch.manual_seed(5)
        out = model.forward_transformer(model.extract_feat(data['inputs']),
                                        data['data_samples'])
        torch.manual_seed(5)
        ref = stock.forward_transformer(stock.extract_feat(data['inputs']),
                                        data['data_samples'])
    assert set(out) == set(ref) | {'hidden_states_c', 'references_c'}
    torch.testing.assert_close(out['hidden_states'], ref['hidden_states'], atol=1e-5, rtol=1e-5)
    for a, b in zip(out['references'], ref['references']):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert out['hidden_states_c'].shape == out['hidden_states'].shape
    assert len(out['references_c']) == NUM_LAYERS + 1
    # layer-0 sharing: the C-stream's first layer is the O-stream's, the last one is not
    torch.testing.assert_close(out['hidden_states_c'][0], out['hidden_states'][0])
    assert not torch.allclose(out['hidden_states_c'][-1], out['hidden_states'][-1], atol=1e-3)
    # eval: no C-stream
    model.eval()
    with torch.no_grad():
        out = model.forward_transformer(model.extract_feat(data['inputs']),
                                        data['data_samples'])
    assert set(out) == {'hidden_states', 'references'}


def _train_step(model, data):
    model.train()
    model.zero_grad()
    losses = model.loss(data['inputs'], data['data_samples'])
    total = sum(v for k, v in losses.items() if 'loss' in k)
    total.backward()
    return losses, total


def test_train_step_with_an_image_without_gt(dac, toy_data_root):
    cfg, model = dac
    data = toy_inputs(model, cfg, toy_data_root)
    sample = data['data_samples'][1]
    sample.gt_instances = sample.gt_instances[torch.zeros(0, dtype=torch.long)]
    assert len(data['data_samples'][0].gt_instances) > 0
    torch.manual_seed(0)
    losses, total = _train_step(model, data)
    expected = set()
    for stem in ('loss_cls', 'loss_bbox', 'loss_iou'):
        for tail in ('', '_c'):
            expected |= {f'{stem}{tail}', f'd0.{stem}{tail}', f'dn_{stem}{tail}',
                         f'd0.dn_{stem}{tail}'}
        expected.add(f'enc_{stem}')
    assert set(losses) == expected
    assert torch.isfinite(total)
    assert all(torch.isfinite(v).all() for v in losses.values())
    assert losses['loss_cls_c'] > 0 and losses['loss_bbox_c'] > 0
    # every parameter receives a gradient (DDP without find_unused_parameters)
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, missing

    # a batch without any GT trains as well
    data['data_samples'][0].gt_instances = \
        data['data_samples'][0].gt_instances[torch.zeros(0, dtype=torch.long)]
    losses, total = _train_step(model, data)
    assert torch.isfinite(total) and losses['loss_bbox_c'] == 0


def test_c_stream_losses_drive_only_through_shared_modules(toy_data_root):
    """Without layer-0 sharing the C-stream losses give no gradient to any self-attention."""
    cfg, model = _build(DAC_CFG, toy_data_root, decoder=dict(
        num_layers=NUM_LAYERS, return_intermediate=True, share_first_self_attn=False,
        layer_cfg=load_toy_config(DAC_CFG).model.decoder.layer_cfg))
    assert model.decoder.share_first_self_attn is False
    data = toy_inputs(model, cfg, toy_data_root)
    model.train()
    losses = model.loss(data['inputs'], data['data_samples'])
    c_total = sum(v for k, v in losses.items() if k.endswith('_c'))
    self_attn = [p for n, p in model.named_parameters()
                 if 'self_attn' in n and n.startswith('decoder')]
    grads = torch.autograd.grad(
        c_total, self_attn + [model.decoder.layers[0].cross_attn.value_proj.weight],
        allow_unused=True)
    assert all(g is None or float(g.abs().sum()) == 0 for g in grads[:-1])
    assert grads[-1] is not None and float(grads[-1].abs().sum()) > 0


def test_c_stream_can_be_switched_off(toy_data_root):
    cfg, model = _build(DAC_CFG, toy_data_root, with_c_stream=False)
    data = toy_inputs(model, cfg, toy_data_root)
    model.train()
    losses = model.loss(data['inputs'], data['data_samples'])
    assert 'loss_cls' in losses and 'dn_loss_cls' in losses
    assert not [k for k in losses if k.endswith('_c')]


def test_wrong_head_is_a_clear_error(toy_data_root):
    cfg = load_toy_config(DAC_CFG, toy_data_root)
    cfg.model.bbox_head.type = 'DINOHead'
    for key in ('o2m_rank_tau', 'o2m_avg_factor_scale', 'o2m_match_o_boxes', 'enc_loss_cls',
                'enc_class_agnostic'):
        cfg.model.bbox_head.pop(key)
    from mmdet.registry import MODELS
    init_default_scope('mmdet')
    with pytest.raises(TypeError, match='DACDINOHead'):
        MODELS.build(cfg.model)


@pytest.mark.skipif(torch.cuda.is_available(), reason='CPU gloo workflow')
@slow('2-process DAC training (pth_transfer + stock DINO predict: the faster tests here)')
def test_dist_train_then_stock_dino_tests_the_checkpoint(toy_data_root, tmp_path):
    """tools/dist_train.sh trains the DAC toy config on 2 CPU processes; tools/test.py gives
    the same COCO metrics for its checkpoint with the DAC config and the stock DINO config."""
    work = str(tmp_path / 'work')
    out = run_tool(['bash', osp.join(TOOLS, 'dist_train.sh'), osp.join(CONFIGS, DAC_CFG), '2',
                    '--work-dir', work, '--cfg-options', 'train_cfg.max_epochs=1',
                    'train_cfg.val_interval=1', *toy_data_cfg_options(toy_data_root)],
                   env=dict(PORT=str(free_port()), OMP_NUM_THREADS='1'))
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-4000:]
    assert 'Distributed training: True' in work_dir_log(work)  # the environment dump
    assert re.search(r'loss_cls_c: \d', log) and re.search(r'dn_loss_cls_c: \d', log)
    ckpt = osp.join(work, 'epoch_1.pth')
    assert osp.isfile(ckpt)
    metrics = []
    for cfg in (DAC_CFG, STOCK_CFG):
        out = run_tool([sys.executable, osp.join(TOOLS, 'test.py'), osp.join(CONFIGS, cfg), ckpt,
                        '--work-dir', str(tmp_path / 'test'), '--cfg-options',
                        *toy_data_cfg_options(toy_data_root)])
        log = out.stdout + out.stderr
        assert out.returncode == 0, log[-4000:]
        found = re.search(r'bbox_mAP_copypaste: ([-\d. ]+)', log)
        assert found, log[-3000:]
        metrics.append(found.group(1).strip())
    assert metrics[0] == metrics[1]
