"""DACDeformableDETR (box refinement + two-stage): same parameters and predict() as stock
DeformableDETR; the training step adds the C-stream losses and handles an image without GT."""
from functools import partial

import torch
from mmdet.models.detectors import DeformableDETR
from mmengine.runner import load_checkpoint
from toy_helpers import (assert_same_detections, build_toy, disable_dropout, predict_both,
                         toy_batch, toy_inputs)

DAC_CFG = 'toy/dac_detr/dac-deformable-detr-refine-twostage_tiny-r18_1xb2-12e_toy.py'
STOCK_CFG = 'toy/deformable-detr_tiny-r18_1xb2-12e_toy.py'


# (cfg, model); the keys replace the config's (cfg.model.update), the build-time warnings shown
_build = partial(build_toy, quiet=False, replace=True)


def test_checkpoint_loads_into_stock_and_predicts_the_same(toy_data_root, tmp_path):
    cfg, model = _build(DAC_CFG, toy_data_root)
    assert type(model).__name__ == 'DACDeformableDETR'
    assert model.with_box_refine and model.as_two_stage
    _, stock = _build(STOCK_CFG, toy_data_root, seed=1, with_box_refine=True,
                      as_two_stage=True)
    assert type(stock) is DeformableDETR
    sd, sd_stock = model.state_dict(), stock.state_dict()
    assert sorted(sd) == sorted(sd_stock)
    assert all(sd[k].shape == sd_stock[k].shape for k in sd)
    ckpt = tmp_path / 'dac_deformable.pth'
    torch.save({'state_dict': sd, 'meta': {}}, ckpt)
    load_checkpoint(stock, str(ckpt), map_location='cpu', strict=True)

    res, res_stock = predict_both(model, stock, toy_batch(cfg, toy_data_root, 'val', 3))
    assert_same_detections(res, res_stock, num=30)


def test_train_step_and_o_stream_equivalence(toy_data_root):
    cfg, model = _build(DAC_CFG, toy_data_root)
    _, stock = _build(STOCK_CFG, toy_data_root, with_box_refine=True, as_two_stage=True)
    stock.load_state_dict(model.state_dict())
    data = toy_inputs(model, cfg, toy_data_root)
    # dropout 0.1 in the toy Deformable DETR: compare the streams with it off
    for m in (model, stock):
        disable_dropout(m).train()
    with torch.no_grad():
        out = model.forward_transformer(model.extract_feat(data['inputs']),
                                        data['data_samples'])
        ref = stock.forward_transformer(stock.extract_feat(data['inputs']),
                                        data['data_samples'])
    torch.testing.assert_close(out['hidden_states'], ref['hidden_states'], atol=1e-5, rtol=1e-5)
    assert out['hidden_states_c'].shape == ref['hidden_states'].shape
    assert len(out['references_c']) == len(ref['references'])
    torch.testing.assert_close(out['references_c'][0], ref['references'][0])

    sample = data['data_samples'][1]
    sample.gt_instances = sample.gt_instances[torch.zeros(0, dtype=torch.long)]
    model.zero_grad()
    losses = model.loss(data['inputs'], data['data_samples'])
    total = sum(v for k, v in losses.items() if 'loss' in k)
    total.backward()
    assert torch.isfinite(total)
    for key in ('loss_cls_c', 'loss_bbox_c', 'loss_iou_c', 'd0.loss_cls_c', 'loss_cls',
                'enc_loss_cls'):
        assert key in losses and torch.isfinite(losses[key])
    assert losses['loss_cls_c'] > 0
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, missing


def test_single_stage_without_refinement_trains(toy_data_root):
    cfg, model = _build(DAC_CFG, toy_data_root, with_box_refine=False, as_two_stage=False)
    data = toy_inputs(model, cfg, toy_data_root)
    model.train()
    losses = model.loss(data['inputs'], data['data_samples'])
    assert 'enc_loss_cls' not in losses and 'loss_cls_c' in losses
    sum(v for k, v in losses.items() if 'loss' in k).backward()
