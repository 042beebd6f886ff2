"""DN-DETR query generator: layout compatible with mmdet's DINO DN-loss code, no negatives,
indicator channel, DN attention mask, noise bounds, images without boxes."""
import torch
from mmdet.models.dense_heads import DINOHead
from mmdet.models.layers.transformer import inverse_sigmoid
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import bbox_xyxy_to_cxcywh
from mmengine.structures import InstanceData

from mmdet_ksdetr.models.dn_detr.dn_query_generator import DnQueryGenerator

C, Q, G = 8, 5, 3


class _Head:  # what DINOHead._get_dn_targets_single needs of its head
    num_classes = 4


def _sample(boxes, labels, shape=(100, 200)):
    s = DetDataSample(metainfo=dict(img_shape=shape))
    s.gt_instances = InstanceData(bboxes=torch.tensor(boxes, dtype=torch.float32).view(-1, 4),
                                  labels=torch.tensor(labels, dtype=torch.long))
    return s


def _gen(**kw):
    torch.manual_seed(0)
    return DnQueryGenerator(num_classes=4, embed_dims=C, num_matching_queries=Q,
                            group_cfg=dict(dynamic=False, num_groups=G), **kw)


def test_layout_mask_and_meta():
    gen = _gen(label_noise_scale=0.0, box_noise_scale=0.0)
    samples = [_sample([[10, 20, 50, 60], [0, 0, 200, 100]], [1, 3]),
               _sample([[5, 5, 25, 45]], [2])]
    label_q, bbox_q, mask, meta = gen(samples)
    assert meta == dict(num_denoising_queries=2 * G, num_denoising_groups=G)
    assert label_q.shape == (2, 2 * G, C) and bbox_q.shape == (2, 2 * G, 4)
    # without noise the box queries are the GT boxes (inverse sigmoid of normalised cxcywh)
    norm = torch.tensor([[10, 20, 50, 60], [0, 0, 200, 100]]) / torch.tensor([200, 100, 200, 100])
    expected = inverse_sigmoid(bbox_xyxy_to_cxcywh(norm), eps=1e-3)
    for g in range(G):
        torch.testing.assert_close(bbox_q[0, 2 * g:2 * g + 2], expected)
        assert torch.equal(bbox_q[1, 2 * g + 1], torch.zeros(4))  # padding slot of image 1
    # label queries: embedding of the GT label + indicator 1; matching part: "no object" + 0
    assert torch.equal(label_q[0, 0, :-1], gen.label_embedding.weight[1])
    assert torch.all(label_q[0, :, -1] == 1)
    match = gen.matching_label_query(2)
    assert match.shape == (2, Q, C) and torch.all(match[..., -1] == 0)
    assert torch.equal(match[0, 0, :-1], gen.label_embedding.weight[4])
    # mask: groups cannot see each other, matching queries cannot see DN queries
    n = 2 * G
    assert mask.shape == (n + Q, n + Q) and mask.dtype == torch.bool
    assert not mask[:2, :2].any() and mask[:2, 2:n].all() and not mask[:n, n:].any()
    assert mask[n:, :n].all() and not mask[n:, n:].any()
    # DINO's DN targets read this layout: group g, GT t -> query g * max_gt + t
    head_targets = DINOHead._get_dn_targets_single(
        _Head(), samples[0].gt_instances, dict(img_shape=(100, 200)), meta)
    assert head_targets[4].tolist() == [0, 1, 2, 3, 4, 5]


def test_noise_bounds():
    gen = _gen(label_noise_scale=0.5, box_noise_scale=0.4)
    box = [[50, 20, 150, 80]]
    label_q, bbox_q, _, meta = gen([_sample(box * 20, [1] * 20)])
    cxcywh = bbox_q[0].sigmoid()
    gt = torch.tensor([0.5, 0.5, 0.5, 0.6])
    # centre moves by at most 0.4 * w/2, h/2; size by at most 0.4 * w, h
    assert ((cxcywh[:, :2] - gt[:2]).abs() <= 0.4 * gt[2:] / 2 + 1e-3).all()
    assert ((cxcywh[:, 2:] - gt[2:]).abs() <= 0.4 * gt[2:] + 1e-3).all()
    assert (cxcywh - gt).abs().max() > 0.01
    labels = torch.cdist(label_q[0, :, :-1], gen.label_embedding.weight).argmin(1)
    assert (labels != 1).any() and (labels == 1).any()


def test_images_without_boxes():
    gen = _gen()
    label_q, bbox_q, mask, meta = gen([_sample([], []), _sample([], [])])
    assert label_q.shape == (2, 0, C) and bbox_q.shape == (2, 0, 4)
    assert meta['num_denoising_queries'] == 0 and mask.shape == (Q, Q) and not mask.any()
