"""DETRDistill with the TPRD switch: refined targets and the
decoupled class loss for the Hungarian logits distillation, raw teacher elsewhere."""
from dataclasses import replace

import numpy as np
import pytest
import torch
from mmdet.structures.bbox import bbox_xyxy_to_cxcywh
from toy_helpers import build_toy, perturb_parameters, toy_inputs

from mmdet_ksdetr.distill.tprd.decoupled_kd_loss import decoupled_kd_loss
from mmdet_ksdetr.distill.core.hungarian_logit_kd_loss import gather_queries
from mmdet_ksdetr.distill.core import get_detr_internals

CFG = 'toy/detr_distill/detr-distill-tprd_deformable-detr_tiny-r18_1xb2-12e_toy.py'


def _build(data_root, **algo):
    cfg, model = build_toy(CFG, data_root, teacher_ckpt=None, **algo)
    perturb_parameters(model.teacher, seed=2)
    np.random.seed(0)  # the same random flips for every build: runs are compared
    return model, toy_inputs(model, cfg, data_root)


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
            ref = algo.tprd_targets(t.cls_logits, t.bbox_preds, data['data_samples'])
            assert ref.pos_mask.any()
            kd = replace(t, cls_logits=ref.logits, bbox_preds=ref.boxes)
            f = s.img_size_factors()
            boxes = kd.bbox_preds  # the TPRD release never clamps teacher boxes
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


def _border_internals(L=1, B=1, N=6, C=3):
    """Hand-built internals of a 40 x 60 (h x w) image whose boxes (normalised cxcywh) cross
    the image border for half the queries."""
    from mmdet_ksdetr.distill.core import DETRInternals
    g = torch.Generator().manual_seed(0)
    boxes = torch.tensor([[0.05, 0.5, 0.3, 0.2], [0.5, 0.97, 0.2, 0.2], [0.9, 0.1, 0.4, 0.5],
                          [0.3, 0.3, 0.2, 0.2], [0.6, 0.4, 0.1, 0.3], [0.5, 0.6, 0.3, 0.1]])
    return DETRInternals(
        cls_logits=torch.randn(L, B, N, C, generator=g),
        bbox_preds=boxes[:N].expand(L, B, N, 4).clone(),
        hidden_states=torch.zeros(L, B, N, 8), queries=None, query_pos=None,
        reference_points=None, neck_feats=(), memory=None, memory_mask=None,
        img_shapes=((40, 60),) * B, batch_input_shape=(40, 60))


def _gt_samples(B=1):
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    out = []
    for _ in range(B):
        s = DetDataSample(metainfo=dict(img_shape=(40, 60)))
        s.gt_instances = InstanceData(bboxes=torch.tensor([[10., 5., 30., 25.]]),
                                      labels=torch.tensor([1]))
        out.append(s)
    return out


def test_tprd_does_not_clamp_teacher_boxes(toy_data_root):
    """TPRD release: the matching and the L1 / GIoU targets use the teacher's boxes as they
    are. A student predicting exactly the teacher's boxes (half of them crossing the border)
    has zero box loss; clamping them (the DETRDistill release) gives a non-zero one."""
    t = _border_internals()
    s = replace(t, cls_logits=t.cls_logits + 0.1)  # student = teacher boxes
    assert (t.bboxes_xyxy() != t.bboxes_xyxy(clamp=True)).any()  # some cross the border
    losses = {}
    for clamp in (None, False, True):
        algo, _ = _build(toy_data_root, distiller=dict(distill_losses=dict(
            _delete_=True, loss_logits_kd=dict(type='HungarianLogitKDLoss'))),
            **({} if clamp is None else dict(clamp_teacher_boxes=clamp)))
        assert algo.tprd and algo.clamp_teacher_boxes == bool(clamp)
        with torch.no_grad():
            losses[clamp] = algo.compute_distill_losses(s, t, _gt_samples())
        torch.testing.assert_close(algo.teacher_box_targets(t),
                                   t.bbox_preds if not clamp else
                                   bbox_xyxy_to_cxcywh(t.bboxes_xyxy(clamp=True)) /
                                   t.img_size_factors()[None, :, None, :])
    for clamp in (None, False):  # the TPRD default: no clamp
        assert float(losses[clamp]['loss_bbox_kd']) == 0.0
        assert float(losses[clamp]['loss_iou_kd']) < 1e-6
    assert float(losses[True]['loss_bbox_kd']) > 0.01


def test_detr_distill_default_clamps_teacher_boxes(toy_data_root):
    """Without TPRD, DETRDistill follows its release and clamps; a bad value is refused."""
    algo, _ = _build(toy_data_root, tprd=False, clamp_teacher_boxes=None)
    assert algo.clamp_teacher_boxes is True
    t = _border_internals()
    clamped = algo.teacher_box_targets(t)
    assert (clamped != t.bbox_preds).any()
    assert (clamped >= 0).all() and (bbox_xyxy_to_cxcywh(t.bboxes_xyxy(clamp=True))[..., 2:]
                                     <= t.img_size_factors()[None, :, None, 2:]).all()
    with pytest.raises(TypeError, match='clamp_teacher_boxes'):
        _build(toy_data_root, clamp_teacher_boxes='yes')
