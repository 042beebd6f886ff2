"""KS heads: every teacher group gets the stock last-layer loss (own Hungarian matching, same
weights) under its own keys; deformable teacher groups use the last layer's branches."""
import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

import mmdet_ksdetr  # noqa: F401

C, Q, B = 32, 10, 2
ASSIGNER = dict(type='HungarianAssigner', match_costs=[
    dict(type='FocalLossCost', weight=2.0),
    dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
    dict(type='IoUCost', iou_mode='giou', weight=2.0)])
FOCAL = dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0)


def _head(type_, **kw):
    init_default_scope('mmdet')
    torch.manual_seed(0)
    head = MODELS.build(dict(type=type_, num_classes=3, embed_dims=C, loss_cls=FOCAL,
                             train_cfg=dict(assigner=ASSIGNER), test_cfg=dict(max_per_img=Q),
                             **kw))
    head.init_weights()
    return head


def _gts():
    g = torch.Generator().manual_seed(0)
    gts, metas = [], []
    for n in (2, 3):
        xy = torch.rand(n, 2, generator=g) * 60
        gts.append(InstanceData(bboxes=torch.cat([xy, xy + 20], 1),
                                labels=torch.randint(0, 3, (n, ), generator=g)))
        metas.append(dict(img_shape=(96, 96)))
    return gts, metas


def _samples(gts, metas):
    samples = []
    for gt, meta in zip(gts, metas):
        s = DetDataSample(metainfo=meta)
        s.gt_instances = gt
        samples.append(s)
    return samples


def test_teacher_groups_get_the_stock_last_layer_loss():
    ks = _head('KSDABDETRHead')
    stock = _head('DABDETRHead')
    stock.load_state_dict(ks.state_dict())
    g = torch.Generator().manual_seed(1)
    hidden = torch.randn(5, B, Q, C, generator=g)  # 3 student layers + 2 teacher groups
    refs = torch.rand(5, B, Q, 4, generator=g) * 0.5 + 0.25
    gts, metas = _gts()
    losses = ks.loss(hidden[:3], refs[:3], _samples(gts, metas),
                     ks_teacher_hidden_states=dict(ks_a=hidden[3:4], ks_b=hidden[4:5]),
                     ks_teacher_references=dict(ks_a=refs[3:4], ks_b=refs[4:5]))
    cls, box = stock(hidden, refs)
    student = stock.loss_by_feat(cls[:3], box[:3], gts, metas)
    assert {k: v for k, v in losses.items() if not k.startswith('ks_')}.keys() == student.keys()
    for k, v in student.items():
        torch.testing.assert_close(losses[k], v)
    for i, name in enumerate(('ks_a', 'ks_b')):
        alone = stock.loss_by_feat(cls[3 + i:4 + i], box[3 + i:4 + i], gts, metas)
        assert set(alone) == {'loss_cls', 'loss_bbox', 'loss_iou'}
        for k, v in alone.items():
            torch.testing.assert_close(losses[f'{name}.{k}'], v)
    with pytest.raises(ValueError, match='same teachers'):
        ks.loss(hidden[:3], refs[:3], _samples(gts, metas),
                ks_teacher_hidden_states=dict(ks_a=hidden[3:4]), ks_teacher_references={})


def test_deformable_teacher_groups_use_the_last_layer_branches():
    head = _head('KSDeformableDETRHead', share_pred_layer=False, num_pred_layer=3)
    with torch.no_grad():
        for branch in list(head.cls_branches) + [m[-1] for m in head.reg_branches]:
            branch.weight.normal_()
    g = torch.Generator().manual_seed(2)
    hidden = torch.randn(4, B, Q, C, generator=g)
    refs = [torch.rand(B, Q, 4, generator=g) * 0.5 + 0.25 for _ in range(4)]
    cls, box = head.forward_ks_teacher(hidden[3:4], refs[3:4])
    assert cls.shape[0] == 1
    torch.testing.assert_close(cls[0], head.cls_branches[2](hidden[3]))
    assert not torch.allclose(cls[0], head.cls_branches[0](hidden[3]))
    ref = refs[3].clamp(1e-5, 1 - 1e-5)
    torch.testing.assert_close(
        box[0], (head.reg_branches[2](hidden[3]) + torch.log(ref / (1 - ref))).sigmoid(),
        atol=1e-4, rtol=1e-4)
