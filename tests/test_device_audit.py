"""Device and dtype audit of our training code, on CPU (no GPU here).

* device: whole toy training steps run under :class:`FactoryDeviceAudit` (no tensor factory in
  our code without ``device=``), and sync-free functions run on the ``meta`` device (a tensor
  created on the CPU and mixed with meta inputs raises);
* host syncs: the syncs our code makes in those steps, and in the fixed functions, are the
  allowed ones only (``STEP_SYNCS`` of ``host_sync_allowlist.py``, the list
  ``test_device_rules.py`` reads too);
* dtype: half / bfloat16 inputs keep their dtype, float32 costs stay float32 under autocast.
"""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from device_audit_helpers import FactoryDeviceAudit, HostSyncCounter
from host_sync_allowlist import STEP_SYNCS
from mmengine.config import Config
from mmengine.structures import InstanceData
from toy_helpers import disable_dropout, set_toy_data_root, toy_batch

from mmdet_ksdetr.distill.core.distill_matcher import DistillHungarianMatcher
from mmdet_ksdetr.distill.core.structures import DETRInternals
from mmdet_ksdetr.distill.qskd.qskd import _query_of_gt
from mmdet_ksdetr.distill.tprd.refinement import (assign_teacher_layers, pad_gt,
                                                  refine_teacher_predictions)
from mmdet_ksdetr.models.dac_detr.ia_bce_loss import ia_bce_loss, rank_weights
from mmdet_ksdetr.models.dac_detr.one_to_many_assigner import OneToManyAssigner
from mmdet_ksdetr.models.ks_detr.ks_gt_mask import rasterize_boxes
from mmdet_ksdetr.models.ks_detr.ks_smlp import KSSMLP
from mmdet_ksdetr.models.ks_detr.ks_triple_attention import KSMultiheadTripleAttention
from mmdet_ksdetr.utils.device import to_device, to_host

TOY = ['configs/toy/ks_detr/ks-dn-deformable-detr_tiny-r18_1xb2-12e_toy.py',
       'configs/toy/dac_detr/dac-dino-cdn-ice-4scale_tiny-r18_1xb2-12e_toy.py',
       'configs/toy/qskd/qskd-tprd_deformable-detr_tiny-r18_1xb2-12e_toy.py']


@pytest.mark.parametrize('rel_cfg', TOY)
def test_toy_training_step_places_tensors_and_syncs_only_where_allowed(rel_cfg, toy_data_root):
    import recorder  # tests/data/equivalence (on sys.path through test_equivalence_reference)
    cfg = set_toy_data_root(Config.fromfile(rel_cfg), toy_data_root)
    # the recorder builds in float64 (CPU-independent draws); the audit runs the float32 a user runs
    model = recorder.build_model(cfg).float()
    disable_dropout(model).train()
    data = model.data_preprocessor(toy_batch(cfg, toy_data_root, 'train', 2), True)
    with FactoryDeviceAudit() as factories, HostSyncCounter() as syncs:
        losses = model.loss(data['inputs'], data['data_samples'])
    assert losses and not factories.missing, factories.missing
    sites = {(f, fn) for f, fn, _, _ in syncs.ours}
    assert sites <= set(STEP_SYNCS), sorted(sites - set(STEP_SYNCS))
    assert not [s for s in syncs.ours if s[3] in ('__bool__', 'item')], syncs.ours


@pytest.fixture(autouse=True, scope='module')
def _recorder_on_path():
    import os.path as osp
    import sys
    here = osp.dirname(osp.abspath(__file__))
    sys.path.insert(0, osp.join(here, 'data', 'equivalence'))
    yield
    sys.path.remove(osp.join(here, 'data', 'equivalence'))


# ------------------------------------------------------------------ meta device
def test_ks_triple_attention_on_meta():
    m = KSMultiheadTripleAttention(8, 2, mode='triple', batch_first=True).to('meta')
    x = torch.empty(2, 5, 8, device='meta')
    mask = torch.zeros(2, 5, dtype=torch.bool, device='meta')
    outs = m(x, query_pos=x, key_padding_mask=mask, teacher_query=x)
    assert [o.device.type for o in outs] == ['meta'] * 3
    assert KSSMLP(8).to('meta')(x, mask).device.type == 'meta'


def test_sync_free_helpers_on_meta():
    meta = torch.device('meta')
    boxes = [torch.empty(3, 4, device=meta), torch.empty(0, 4, device=meta)]
    assert rasterize_boxes(boxes, (6, 7)).device == meta
    assert _query_of_gt(torch.empty(2, 3, 5, dtype=torch.long, device=meta), 4).shape == (2, 3, 4)
    scores = torch.empty(6, device=meta)
    assert rank_weights(scores, torch.empty(6, dtype=torch.long, device=meta)).device == meta
    pred = torch.empty(4, 3, device=meta)
    rows, labels = torch.empty(2, dtype=torch.long, device=meta), torch.empty(
        2, dtype=torch.long, device=meta)
    assert ia_bce_loss(pred, rows, labels, torch.empty(2, device=meta)).device == meta
    cost = DistillHungarianMatcher().cost(
        torch.empty(2, 5, 3, device=meta), torch.empty(2, 5, 4, device=meta),
        torch.empty(2, 6, 3, device=meta), torch.empty(2, 6, 4, device=meta),
        torch.empty(2, 4, device=meta))
    assert cost.device == meta and cost.shape == (2, 5, 6)
    labels, gt_boxes, num = pad_gt([torch.empty(2, dtype=torch.long, device=meta)],
                                   [torch.empty(2, 4, device=meta)])
    assert {labels.device, gt_boxes.device, num.device} == {meta}


# ------------------------------------------------------------------ host syncs of fixed code
def _teacher_outputs(dtype=torch.float32, L=3, B=2, Q=6, C=4):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(L, B, Q, C, generator=g).to(dtype)
    boxes = (torch.rand(L, B, Q, 4, generator=g) * 0.5 + 0.2).to(dtype)
    pos = torch.full((L, B, Q), -1, dtype=torch.long)
    pos[:, 0, :2] = torch.tensor([0, 1])
    pos[:, 1, 3] = 0
    gt_labels, gt_boxes, num = pad_gt([torch.tensor([1, 3]), torch.tensor([2])],
                                      [torch.rand(2, 4, generator=g) * 0.3 + 0.3,
                                       torch.rand(1, 4, generator=g) * 0.3 + 0.3])
    return logits, boxes, pos, gt_labels, gt_boxes, num


def test_tprd_refinement_syncs_once_and_keeps_dtype():
    inputs = _teacher_outputs()
    with HostSyncCounter() as syncs:
        ref = refine_teacher_predictions(*inputs)
    assert syncs.calls == ['tolist']  # the input checks; no bool(any) / nonzero per branch
    assert (ref.logits != inputs[0]).any() and (ref.boxes != inputs[1]).any()
    for dtype in (torch.float16, torch.bfloat16):
        half = _teacher_outputs(dtype)
        out = refine_teacher_predictions(*half)
        assert out.logits.dtype == out.boxes.dtype == dtype
        # refinement only copies values between layers: exact in any dtype
        up = refine_teacher_predictions(half[0].float(), half[1].float(), *half[2:])
        assert torch.equal(out.logits.float(), up.logits)
        assert torch.equal(out.boxes.float(), up.boxes)


def test_pad_gt_has_no_sync():
    with HostSyncCounter() as syncs:
        pad_gt([torch.tensor([1, 2]), torch.tensor([0])], [torch.rand(2, 4), torch.rand(1, 4)])
    assert syncs.calls == []


def test_teacher_layer_assignment_one_transfer_per_call():
    from mmdet.registry import TASK_UTILS
    from mmdet.structures import DetDataSample

    from mmdet_ksdetr.distill.tprd.refinement import DEFAULT_TEACHER_ASSIGNER
    assigner = TASK_UTILS.build(DEFAULT_TEACHER_ASSIGNER)
    logits, boxes = _teacher_outputs()[:2]
    samples = []
    for n in (2, 3):
        s = DetDataSample(metainfo=dict(img_shape=(40, 50)))
        s.gt_instances = InstanceData(bboxes=torch.rand(n, 4) * 20 + torch.tensor([0, 0, 25, 20]),
                                      labels=torch.arange(n))
        samples.append(s)
    with HostSyncCounter() as syncs:
        out = assign_teacher_layers(logits, boxes, samples, assigner)
    assert syncs.calls.count('cpu') == 1 and 'tolist' not in syncs.calls
    assert (out >= 0).sum() == 3 * (2 + 3)


def test_one_to_many_assigner_checks_in_one_sync_and_takes_half_scores():
    g = torch.Generator().manual_seed(0)
    pred = InstanceData(scores=torch.randn(20, 5, generator=g).half(),
                        bboxes=(torch.rand(20, 4, generator=g) * 30).sort(-1).values.half())
    gt = InstanceData(bboxes=torch.tensor([[1., 2., 20., 25.], [5., 5., 28., 29.]]),
                      labels=torch.tensor([0, 3]))
    a = OneToManyAssigner(max_pos_per_img=None)
    with HostSyncCounter() as syncs:
        res = a.assign(pred, gt)
    assert syncs.calls.count('tolist') == 1
    assert not {'__int__', '__bool__', 'item', 'bincount'} & set(syncs.calls)
    assert res.num_pos > 0 and a.match_scores(pred, gt).dtype == torch.float32
    gt.labels = torch.tensor([0, 5])
    with pytest.raises(ValueError, match=r'\[0, 5\)'):
        a.assign(pred, gt)


# ------------------------------------------------------------------ dtype
def test_distill_matching_cost_stays_float32_under_autocast():
    g = torch.Generator().manual_seed(0)
    args = (torch.randn(2, 7, 80, generator=g) * 3, torch.rand(2, 7, 4, generator=g) * 0.4 + 0.3,
            torch.rand(2, 9, 80, generator=g), torch.rand(2, 9, 4, generator=g) * 0.4 + 0.3,
            torch.tensor([[64., 48., 64., 48.]]).expand(2, 4))
    matcher = DistillHungarianMatcher()
    ref = matcher.cost(*args)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        amp = matcher.cost(*args)
        s_idx, t_idx = matcher.match(*args)
    assert amp.dtype == torch.float32 and torch.equal(amp, ref)
    assert torch.equal(s_idx, matcher.match(*args)[0]) and t_idx.dtype == torch.long


def test_image_size_factors_are_float32_for_half_logits():
    fake = SimpleNamespace(cls_logits=torch.zeros(1, 1, 3, 2, dtype=torch.float16),
                           img_shapes=((2049, 4097), ))
    factors = DETRInternals.img_size_factors(fake)
    assert factors.dtype == torch.float32 and factors.tolist() == [[4097., 2049., 4097., 2049.]]


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_ks_triple_attention_and_smlp_keep_half_dtype(dtype):
    torch.manual_seed(0)
    m = KSMultiheadTripleAttention(8, 2, mode='triple', batch_first=True).to(dtype)
    x = torch.randn(2, 5, 8).to(dtype)
    mask = torch.tensor([[False] * 4 + [True]] * 2)
    outs = m(x, query_pos=x, key_padding_mask=mask, teacher_query=x * 0.5)
    assert [o.dtype for o in outs] == [dtype] * 3
    assert KSSMLP(8).to(dtype)(x, mask).dtype == dtype


def test_to_host_and_to_device_are_exact_and_single_copies():
    f = torch.tensor([[1.0e-8, 3.14159274, -2.0], [float('inf'), float('nan'), 7.]])
    i = torch.tensor([[-1, 5], [2 ** 40, 0]])
    b = torch.tensor([True, False, True])
    with HostSyncCounter() as syncs:
        hf, hi, hb = to_host(f, i, b)
    assert syncs.calls.count('cpu') == 1
    assert hf.dtype == np.float32 and hi.dtype == np.int64 and hb.dtype == np.bool_
    np.testing.assert_array_equal(hf, f.numpy())
    assert (hi == i.numpy()).all() and (hb == b.numpy()).all()
    moved = to_device([np.arange(6).reshape(2, 3), np.array([4, 5])], 'cpu')
    assert [m.shape for m in moved] == [(2, 3), (2, )] and moved[1].tolist() == [4, 5]


def test_attention_splat_reads_level_shapes_once():
    from mmdet_ksdetr.distill.qskd.qskd_feature_loss import splat_attention
    g = torch.Generator().manual_seed(0)
    shapes = torch.tensor([[4, 5], [2, 3]])
    weights = torch.rand(2, 3, 2, 2, 4, generator=g).half()
    with HostSyncCounter() as syncs:
        maps = splat_attention(weights, torch.rand(2, 3, 2, 2, 4, 2, generator=g), shapes,
                               torch.ones(2, 3), mode='nearest')
    assert syncs.calls == ['tolist']
    assert [tuple(m.shape) for m in maps] == [(2, 4, 5), (2, 2, 3)]
    assert torch.allclose(sum(m.sum() for m in maps), weights.float().sum())


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_ia_bce_forward_is_sync_free_and_equals_the_pair_form(dtype):
    from mmdet_ksdetr.models.dac_detr.ia_bce_loss import IABCELoss
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(7, 4, generator=g).to(dtype).requires_grad_()
    labels = torch.tensor([4, 1, 4, 0, 3, 4, 1])  # 4 = background
    ious = torch.rand(7, generator=g).to(dtype)
    rank = torch.rand(7, generator=g)
    loss = IABCELoss()
    with HostSyncCounter() as syncs:
        out = loss(pred, (labels, ious, rank), avg_factor=3.0)
    assert syncs.calls == [] and out.dtype == dtype
    rows = torch.tensor([1, 3, 4, 6])
    ref = loss.loss_pairs(pred, rows, labels[rows], ious[rows], rank[rows], avg_factor=3.0)
    assert torch.equal(out, ref)
    g1, = torch.autograd.grad(out, pred)
    g2, = torch.autograd.grad(ref, pred)
    assert torch.equal(g1, g2)


def test_decoupled_kd_loss_syncs_once():
    from mmdet_ksdetr.distill.tprd.decoupled_kd_loss import decoupled_kd_loss, kd_kl_loss
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(2, 5, 4, generator=g), torch.randn(2, 5, 4, generator=g)
    pos = torch.tensor([[-1, 2, -1, 0, -1], [3, -1, -1, -1, 1]])
    with HostSyncCounter() as syncs:
        out = decoupled_kd_loss(s, t, pos)
    assert syncs.calls == ['__int__']  # the largest label, no nonzero
    neg = pos < 0
    kl = kd_kl_loss(s, t)
    assert torch.equal(out[neg], kl[neg]) and not torch.equal(out[~neg], kl[~neg])
