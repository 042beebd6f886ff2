"""DETRDistill with the TPRD switch (spec dac-detr-and-tprd.md B3): refined targets and the
decoupled class loss for the Hungarian logits distillation, raw teacher elsewhere."""
import warnings
from dataclasses import replace

import numpy as np
import torch
from mmdet.structures.bbox import bbox_xyxy_to_cxcywh
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope
from mmrazor.registry import MODELS
from toy_helpers import load_toy_config, toy_batch

from mmdet_ksdetr.distill.losses.decoupled_kd_loss import decoupled_kd_loss
from mmdet_ksdetr.distill.losses.hungarian_logit_kd_loss import gather_queries
from mmdet_ksdetr.distill.internals import get_detr_internals

CFG = 'toy/detr_distill/detr-distill-tprd_deformable-detr_tiny-r18_1xb2-12e_toy.py'


def _build(data_root, **algo):
    cfg = load_toy_config(CFG, data_root)
    cfg.model.teacher_ckpt = None
    cfg.model.update(algo)
    init_default_scope('mmdet')
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        model = MODELS.build(cfg.model)
    MMLogger.get_current_instance().setLevel('WARNING')
    model.init_weights()
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for p in model.teacher.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    np.random.seed(0)  # the same random flips for every build: runs are compared
    data = model.data_preprocessor(toy_batch(cfg, data_root, 'train', 2), True)
    return model, data


def test_tprd_switch_wiring(toy_data_root):
    out = {}
    for tprd in (False, True):
        algo, data = _build(toy_data_root, tprd=tprd)
        algo.eval()
        with torch.no_grad():
            t = get_detr_internals(algo.teacher, data['inputs'], data['data_samples'])
            s = get_detr_internals(algo.student, data['inputs'], data['data_samples'],
                                   groups=algo.student_groups(t))
            out[tprd] = algo.compute_distill_losses(s, t, data['data_samples'])
        if tprd:
            ref = algo.refiner(t.cls_logits, t.bbox_preds, data['data_samples'])
            assert ref.pos_mask.any()
            kd = replace(t, cls_logits=ref.logits, bbox_preds=ref.boxes)
            f = s.img_size_factors()
            boxes = bbox_xyxy_to_cxcywh(kd.bboxes_xyxy(clamp=True)) / f[None, :, None, :]
            s_idx, t_idx = algo.matcher.match(s.cls_logits[-1:], s.bbox_preds[-1:],
                                              kd.scores()[-1:], boxes[-1:], f[None])
            dkd = decoupled_kd_loss(gather_queries(s.cls_logits[-1], s_idx[0]),
                                    gather_queries(ref.logits[-1], t_idx[0]),
                                    gather_queries(ref.pos_labels[-1], t_idx[0]))
            expected = 4.0 * dkd.sum() / (s.batch_size * s.num_queries)
            torch.testing.assert_close(out[True]['loss_cls_kd'], expected)
    # the feature loss and the teacher group use the raw teacher: unchanged by the switch
    torch.testing.assert_close(out[True]['loss_feat_kd'], out[False]['loss_feat_kd'])
    torch.testing.assert_close(out[True]['teacher_group.loss_cls'],
                               out[False]['teacher_group.loss_cls'])
    assert not torch.allclose(out[True]['loss_cls_kd'], out[False]['loss_cls_kd'])


def test_tprd_training_step(toy_data_root):
    algo, data = _build(toy_data_root)
    assert algo.tprd
    algo.train()
    losses = algo.loss(data['inputs'], data['data_samples'])
    assert 'distill.loss_cls_kd' in losses and 'distill.d0.loss_cls_kd' in losses
    assert all(torch.isfinite(v) for v in losses.values())
    sum(v for k, v in losses.items() if k.startswith('distill.')).backward()
    assert all(p.grad is None for p in algo.teacher.parameters())
    assert algo.student.bbox_head.cls_branches[0].weight.grad.abs().sum() > 0
