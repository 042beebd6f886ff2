"""DN-DETR head: the matching queries get the stock DAB-DETR losses, the denoising queries
the same per-layer losses as mmdet's DINO head gives its denoising queries (fixed slot
assignment, padding slots background), also with images / batches without GT."""
import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

import mmdet_ksdetr  # noqa: F401

C, Q, B, L, G = 32, 6, 2, 2, 3
ASSIGNER = dict(type='HungarianAssigner', match_costs=[
    dict(type='FocalLossCost', weight=2.0),
    dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
    dict(type='IoUCost', iou_mode='giou', weight=2.0)])
FOCAL = dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0)


def _head(type_):
    init_default_scope('mmdet')
    torch.manual_seed(0)
    head = MODELS.build(dict(type=type_, num_classes=3, embed_dims=C, loss_cls=FOCAL,
                             loss_bbox=dict(type='L1Loss', loss_weight=5.0),
                             loss_iou=dict(type='GIoULoss', loss_weight=2.0),
                             train_cfg=dict(assigner=ASSIGNER), test_cfg=dict(max_per_img=Q)))
    head.init_weights()
    return head


def _gts(counts):
    g = torch.Generator().manual_seed(0)
    gts = []
    for n in counts:
        xy = torch.rand(n, 2, generator=g) * 60
        gts.append(InstanceData(bboxes=torch.cat([xy, xy + 5 + 20 * torch.rand(n, 2, generator=g)],
                                                 1),
                                labels=torch.randint(0, 3, (n, ), generator=g)))
    return gts, [dict(img_shape=(96, 80)) for _ in counts]


@pytest.mark.parametrize('counts', [(2, 3), (0, 2), (0, 0)])
def test_dn_losses_equal_mmdet_dino_dn_losses(counts):
    head, dino = _head('DNDETRHead'), _head('DINOHead')
    stock = _head('DABDETRHead')
    gts, metas = _gts(counts)
    num_dn = max(counts) * G
    dn_meta = dict(num_denoising_queries=num_dn, num_denoising_groups=G)
    g = torch.Generator().manual_seed(1)
    cls = torch.randn(L, B, num_dn + Q, 3, generator=g, requires_grad=True)
    box = (torch.rand(L, B, num_dn + Q, 4, generator=g) * 0.5 + 0.2).requires_grad_()
    losses = head.loss_by_feat(cls, box, gts, metas, dn_meta)

    ref = stock.loss_by_feat(cls[:, :, num_dn:], box[:, :, num_dn:], gts, metas)
    dn_cls, dn_bbox, dn_iou = dino.loss_dn(cls[:, :, :num_dn], box[:, :, :num_dn], gts, metas,
                                           dn_meta)
    for i in range(L):
        prefix = '' if i == L - 1 else f'd{i}.'
        ref.update({f'{prefix}dn_loss_cls': dn_cls[i], f'{prefix}dn_loss_bbox': dn_bbox[i],
                    f'{prefix}dn_loss_iou': dn_iou[i]})
    assert set(losses) == set(ref)
    for k, v in ref.items():
        torch.testing.assert_close(losses[k].sum(), v.sum(), msg=k)
    if num_dn:  # gradients equal too
        dn_keys = [k for k in ref if 'dn_' in k]
        got = torch.autograd.grad(sum(losses[k].sum() for k in dn_keys), (cls, box))
        want = torch.autograd.grad(sum(ref[k].sum() for k in dn_keys), (cls, box))
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b)
        assert got[0][:, :, :num_dn].abs().sum() > 0


def test_loss_from_data_samples():
    head = _head('DNDETRHead')
    gts, metas = _gts((1, 2))
    samples = []
    for gt, meta in zip(gts, metas):
        s = DetDataSample(metainfo=meta)
        s.gt_instances = gt
        samples.append(s)
    dn_meta = dict(num_denoising_queries=2 * G, num_denoising_groups=G)
    hidden = torch.randn(L, B, 2 * G + Q, C)
    refs = torch.rand(L, B, 2 * G + Q, 4) * 0.5 + 0.25
    losses = head.loss(hidden, refs, samples, dn_meta)
    cls, box = head(hidden, refs)
    torch.testing.assert_close(losses, head.loss_by_feat(cls, box, gts, metas, dn_meta))
