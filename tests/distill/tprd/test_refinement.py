"""TPRD teacher prediction refinement."""
import pytest
import torch
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import bbox_overlaps
from mmengine.structures import InstanceData

from mmdet_ksdetr.distill.tprd.refinement import (TeacherPredictionRefiner, gt_from_data_samples,
                                                  pad_gt, refine_teacher_predictions)

NEG = -4.0


def _box(cx, cy, w, h):
    return [cx, cy, w, h]


def _hand_built():
    """Three layers, five queries, image 0 with two GT, image 1 without GT. All numbers are
    dyadic so that IoU ties are exact."""
    L, B, Q, C = 3, 2, 5, 3
    gt_labels = torch.tensor([[0, 2], [-1, -1]])
    g0 = _box(0.25, 0.25, 0.25, 0.25)
    g1 = _box(0.75, 0.75, 0.25, 0.25)
    gt_boxes = torch.tensor([[g0, g1], [[0.] * 4, [0.] * 4]])
    num_gts = torch.tensor([2, 0])

    logits = torch.full((L, B, Q, C), NEG)
    boxes = torch.full((L, B, Q, 4), 0.5)
    pos = torch.full((L, B, Q), -1, dtype=torch.long)
    # ---- q0: positive for g0 (class 0) in every layer
    pos[:, 0, 0] = 0
    boxes[0, 0, 0] = torch.tensor(_box(0.3125, 0.25, 0.25, 0.25))  # IoU 0.6
    boxes[1, 0, 0] = torch.tensor(g0)  # IoU 1.0
    boxes[2, 0, 0] = torch.tensor(_box(0.25, 0.3125, 0.25, 0.25))  # IoU 0.6 (== layer 0)
    logits[0, 0, 0, 0] = 1.0
    logits[1, 0, 0, 0] = 2.0
    logits[2, 0, 0, 0] = 0.5
    # ---- q1: positive for g1 (class 2) in layer 3 only; layers 1 and 2 tie on IoU
    pos[2, 0, 1] = 1
    boxes[0, 0, 1] = torch.tensor(_box(0.8125, 0.75, 0.25, 0.25))  # IoU 0.6
    boxes[1, 0, 1] = torch.tensor(_box(0.6875, 0.75, 0.25, 0.25))  # IoU 0.6 (tie)
    boxes[2, 0, 1] = torch.tensor(_box(0.875, 0.75, 0.25, 0.25))  # IoU 1/3
    logits[0, 0, 1, 2] = 1.0
    logits[1, 0, 1, 2] = 1.5
    logits[2, 0, 1, 2] = 0.5
    # ---- q2: negative everywhere, same top class 0
    logits[0, 0, 2] = torch.tensor([0.5, -1., -1.])
    logits[1, 0, 2] = torch.tensor([2.0, -1., -1.])
    logits[2, 0, 2] = torch.tensor([1.0, 0., -1.])
    # ---- q3: negative, layer 1 has another top class
    logits[0, 0, 3] = torch.tensor([-1., 3.0, -1.])
    logits[1, 0, 3] = torch.tensor([0.0, -1., -1.])
    logits[2, 0, 3] = torch.tensor([0.25, -1., -1.])
    # ---- q4: positive for g1 in layers 1-2 with equal IoU (strictness), negative in layer 3
    pos[0:2, 0, 4] = 1
    boxes[0:2, 0, 4] = torch.tensor(_box(0.75, 0.8125, 0.25, 0.25))
    boxes[2, 0, 4] = torch.tensor(g1)
    logits[0, 0, 4, 2] = 2.0
    logits[1, 0, 4, 2] = 1.0
    logits[2, 0, 4, 2] = 3.0
    # ---- image 1 (no GT): scores that the negative rule would lower, boxes anything
    logits[:, 1, :, 0] = torch.tensor([0.0, 1.0, 2.0]).view(3, 1)
    boxes[:, 1] = torch.rand(L, Q, 4) * 0.5 + 0.25
    return logits, boxes, pos, gt_labels, gt_boxes, num_gts


def test_hand_built_three_layers():
    logits, boxes, pos, gt_labels, gt_boxes, num_gts = _hand_built()
    out = refine_teacher_predictions(logits, boxes, pos, gt_labels, gt_boxes, num_gts)
    exp_l, exp_b = logits.clone(), boxes.clone()
    # q0 layer 3: layer 2 has higher IoU and score -> its box and class-0 logit
    exp_b[2, 0, 0] = boxes[1, 0, 0]
    exp_l[2, 0, 0, 0] = 2.0
    # q0 layer 2: layer 1 has lower IoU -> unchanged
    # q1 layer 3: layers 1 and 2 tie on IoU (both higher, both higher score) -> earliest
    exp_b[2, 0, 1] = boxes[0, 0, 1]
    exp_l[2, 0, 1, 2] = 1.0
    # q1 layer 2 (negative): same top class 2, layer 1 lower (1.0 < 1.5)
    exp_l[1, 0, 1, 2] = 1.0
    # q2: layer 3 -> lowest earlier max with the same class (0.5 of layer 1); layer 2 too
    exp_l[2, 0, 2, 0] = 0.5
    exp_l[1, 0, 2, 0] = 0.5
    # q3: layer 3 -> layer 2 (layer 1's top class differs); layer 2 unchanged
    exp_l[2, 0, 3, 0] = 0.0
    # q4 layer 2: equal IoU with layer 1 is not strictly better -> unchanged;
    # q4 layer 3 (negative, top class 2 at 3.0): min over {2.0, 1.0} -> 1.0
    exp_l[2, 0, 4, 2] = 1.0
    torch.testing.assert_close(out.logits, exp_l, rtol=0, atol=0)
    torch.testing.assert_close(out.boxes, exp_b, rtol=0, atol=0)
    # layer 1 never changes
    assert torch.equal(out.logits[0], logits[0]) and torch.equal(out.boxes[0], boxes[0])
    # image without GT: untouched
    assert torch.equal(out.logits[:, 1], logits[:, 1])
    assert torch.equal(out.boxes[:, 1], boxes[:, 1])
    # assignment passes through, labels filled in
    assert torch.equal(out.pos_gt_inds, pos)
    assert out.pos_labels[2, 0, 1] == 2 and out.pos_labels[0, 0, 0] == 0
    assert (out.pos_labels[pos < 0] == -1).all()
    # inputs are not modified in place
    assert torch.equal(logits, _hand_built()[0])


def _loop_reference(logits, boxes, pos, gt_labels, gt_boxes, num_gts):
    """The refinement rules as a plain per-image/per-layer/per-query loop."""
    L, B, Q, C = logits.shape
    out_l, out_b = logits.clone(), boxes.clone()

    def iou(a, b):
        def xyxy(x):
            return torch.stack([x[0] - x[2] / 2, x[1] - x[3] / 2, x[0] + x[2] / 2,
                                x[1] + x[3] / 2])
        return float(bbox_overlaps(xyxy(a)[None], xyxy(b)[None])[0, 0])

    for b in range(B):
        if int(num_gts[b]) == 0:
            continue
        for i in range(L):
            for k in range(Q):
                g = int(pos[i, b, k])
                if g >= 0:
                    c = int(gt_labels[b, g])
                    s_i = float(torch.sigmoid(logits[i, b, k, c]))
                    u_i = iou(boxes[i, b, k], gt_boxes[b, g])
                    best_j, best_u = None, None
                    for j in range(i + 1):
                        s_j = float(torch.sigmoid(logits[j, b, k, c]))
                        u_j = iou(boxes[j, b, k], gt_boxes[b, g])
                        if u_j > u_i and s_j > s_i and (best_u is None or u_j > best_u):
                            best_j, best_u = j, u_j
                    if best_j is not None:
                        out_b[i, b, k] = boxes[best_j, b, k]
                        out_l[i, b, k, c] = logits[best_j, b, k, c]
                else:
                    a_i = int(torch.argmax(logits[i, b, k]))
                    m_i = float(logits[i, b, k].max())
                    best_j, best_m = None, None
                    for j in range(i + 1):
                        a_j = int(torch.argmax(logits[j, b, k]))
                        m_j = float(logits[j, b, k].max())
                        if a_j == a_i and m_j < m_i and (best_m is None or m_j < best_m):
                            best_j, best_m = j, m_j
                    if best_j is not None:
                        out_l[i, b, k, a_i] = logits[best_j, b, k, a_i]
    return out_l, out_b


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_vectorised_equals_loop(seed):
    g = torch.Generator().manual_seed(seed)
    L, B, Q, C = 4, 3, 12, 5
    # quantised values produce many exact ties on scores, maxima and IoUs
    logits = torch.randint(-8, 9, (L, B, Q, C), generator=g).float() / 2
    centre = torch.randint(4, 13, (L, B, Q, 2), generator=g).float() / 16
    size = torch.randint(2, 7, (L, B, Q, 2), generator=g).float() / 16
    # make later layers sometimes copy earlier boxes (IoU ties)
    boxes = torch.cat([centre, size], -1)
    copy = torch.rand(L, B, Q, generator=g) < 0.3
    boxes[1:][copy[1:]] = boxes[:-1][copy[1:]]
    num_gts = torch.tensor([3, 0, 2])
    G = 3
    gt_labels = torch.randint(0, C, (B, G), generator=g)
    gt_boxes = torch.cat([torch.randint(4, 13, (B, G, 2), generator=g).float() / 16,
                          torch.randint(2, 7, (B, G, 2), generator=g).float() / 16], -1)
    pos = torch.full((L, B, Q), -1, dtype=torch.long)
    for layer in range(L):
        for b in range(B):
            n = int(num_gts[b])
            qs = torch.randperm(Q, generator=g)[:n]
            pos[layer, b, qs] = torch.arange(n)
    out = refine_teacher_predictions(logits, boxes, pos, gt_labels, gt_boxes, num_gts)
    ref_l, ref_b = _loop_reference(logits, boxes, pos, gt_labels, gt_boxes, num_gts)
    assert torch.equal(out.logits, ref_l)
    assert torch.equal(out.boxes, ref_b)
    assert not torch.equal(out.logits, logits), 'random case should refine something'
    assert torch.equal(out.logits[0], logits[0]) and torch.equal(out.boxes[0], boxes[0])
    assert torch.equal(out.logits[:, 1], logits[:, 1])


def test_fp16_logits_keep_dtype():
    logits, boxes, pos, gt_labels, gt_boxes, num_gts = _hand_built()
    out = refine_teacher_predictions(logits.half(), boxes, pos, gt_labels, gt_boxes, num_gts)
    assert out.logits.dtype == torch.float16
    ref = refine_teacher_predictions(logits, boxes, pos, gt_labels, gt_boxes, num_gts)
    assert torch.equal(out.logits.float(), ref.logits)


def test_no_gt_at_all_is_noop():
    L, B, Q, C = 2, 2, 4, 3
    logits = torch.randn(L, B, Q, C)
    boxes = torch.rand(L, B, Q, 4)
    pos = torch.full((L, B, Q), -1, dtype=torch.long)
    gl, gb, n = pad_gt([torch.zeros(0, dtype=torch.long)] * 2, [torch.zeros(0, 4)] * 2)
    out = refine_teacher_predictions(logits, boxes, pos, gl, gb, n)
    assert torch.equal(out.logits, logits) and torch.equal(out.boxes, boxes)


def test_bad_input_raises_clear_error():
    logits, boxes, pos, gt_labels, gt_boxes, num_gts = _hand_built()
    with pytest.raises(ValueError, match='boxes must be'):
        refine_teacher_predictions(logits, boxes[..., :2], pos, gt_labels, gt_boxes, num_gts)
    with pytest.raises(ValueError, match='GT index'):
        refine_teacher_predictions(logits, boxes, pos.clamp(min=1), gt_labels, gt_boxes,
                                   num_gts)
    with pytest.raises(ValueError, match='layers, batch, queries, classes'):
        refine_teacher_predictions(logits[0], boxes, pos, gt_labels, gt_boxes, num_gts)


def _sample(h, w, gt_xyxy, labels):
    ds = DetDataSample(metainfo=dict(img_shape=(h, w), batch_input_shape=(h, w)))
    ds.gt_instances = InstanceData(bboxes=torch.tensor(gt_xyxy, dtype=torch.float32).view(-1, 4),
                                   labels=torch.tensor(labels, dtype=torch.long))
    return ds


def test_refiner_assigns_with_hungarian_and_refines():
    """End to end through TeacherPredictionRefiner: the Hungarian match picks the query that
    sits on the GT, and the refinement then uses that assignment."""
    samples = [_sample(64, 128, [[32, 16, 64, 48]], [1]), _sample(64, 128, [], [])]
    labels, gtb = gt_from_data_samples(samples)
    torch.testing.assert_close(gtb[0], torch.tensor([[0.375, 0.5, 0.25, 0.5]]))
    L, B, Q, C = 2, 2, 3, 3
    logits = torch.full((L, B, Q, C), -3.0)
    boxes = torch.tensor([0.8, 0.2, 0.1, 0.1]).repeat(L, B, Q, 1)
    boxes[0, 0, 2] = gtb[0][0]  # layer 1: query 2 exactly on the GT, confident
    logits[0, 0, 2, 1] = 2.0
    boxes[1, 0, 2] = gtb[0][0] + torch.tensor([0.05, 0, 0, 0])  # layer 2 slightly worse
    logits[1, 0, 2, 1] = 1.0
    out = TeacherPredictionRefiner()(logits, boxes, samples)
    assert out.pos_gt_inds[:, 0].tolist() == [[-1, -1, 0], [-1, -1, 0]]
    assert (out.pos_gt_inds[:, 1] == -1).all()
    assert out.pos_labels[1, 0, 2] == 1
    torch.testing.assert_close(out.boxes[1, 0, 2], gtb[0][0])
    assert out.logits[1, 0, 2, 1] == 2.0
    raw = TeacherPredictionRefiner()(logits, boxes, samples, refine=False)
    assert torch.equal(raw.logits, logits) and torch.equal(raw.pos_gt_inds, out.pos_gt_inds)


def test_batched_assignment_equals_mmdet_assigner():
    """The batched-cost path gives exactly mmdet's HungarianAssigner.assign, layer by layer."""
    from mmdet_ksdetr.distill.tprd.refinement import assign_teacher_layers
    g = torch.Generator().manual_seed(0)
    L, B, Q, C = 3, 2, 15, 4
    logits = torch.randn(L, B, Q, C, generator=g) * 2
    boxes = torch.rand(L, B, Q, 4, generator=g) * 0.4 + 0.3
    samples = [_sample(64, 96, [[5, 5, 40, 30], [50, 20, 90, 60], [10, 30, 30, 60]], [0, 3, 1]),
               _sample(48, 64, [[0, 0, 20, 20]], [2])]
    refiner = TeacherPredictionRefiner()
    fast = assign_teacher_layers(logits, boxes, samples, refiner.assigner)

    class Wrapped:  # hides match_costs: forces the per-layer assigner.assign path
        def assign(self, **kw):
            return refiner.assigner.assign(**kw)

    slow = assign_teacher_layers(logits, boxes, samples, Wrapped())
    assert torch.equal(fast, slow)
    assert (fast >= 0).sum() == L * 4


@pytest.mark.parametrize('where,bad', [('logits', float('nan')), ('boxes', float('nan')),
                                       ('boxes', float('inf'))])
def test_non_finite_teacher_predictions_raise_divergence(where, bad):
    """A NaN/inf matching cost (from a NaN GT-class logit, a NaN or inf box) stops with
    TrainingDivergedError naming the TPRD matching, not scipy's "matrix contains invalid
    numeric entries"."""
    from mmdet_ksdetr.distill.tprd.refinement import assign_teacher_layers
    from mmdet_ksdetr.utils import TrainingDivergedError
    logits = torch.zeros(2, 1, 4, 3)
    boxes = torch.full((2, 1, 4, 4), 0.5)
    samples = [_sample(64, 96, [[5, 5, 40, 30]], [0])]
    assigner = TeacherPredictionRefiner().assigner
    assert (assign_teacher_layers(logits, boxes, samples, assigner) >= 0).sum() == 2
    if where == 'logits':
        logits[1, 0, 2, 0] = bad  # the GT's class: the focal cost reads it
    else:
        boxes[1, 0, 2, 1] = bad
    with pytest.raises(TrainingDivergedError, match='TPRD teacher-to-GT matching cost has '
                       'NaN/inf entries.*clip_grad=dict'):
        assign_teacher_layers(logits, boxes, samples, assigner)
