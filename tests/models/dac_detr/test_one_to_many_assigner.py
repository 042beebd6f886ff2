"""OneToManyAssigner (DAC-DETR's C-stream assignment) on hand-built cases."""
import pytest
import torch
from mmdet.registry import TASK_UTILS
from mmengine.structures import InstanceData

from mmdet_ksdetr.models.dac_detr.one_to_many_assigner import OneToManyAssigner
from mmdet_ksdetr.utils import TrainingDivergedError

NEG = -30.0  # sigmoid(-30) ~ 1e-13: no class term


def _logit(p):
    p = torch.as_tensor(p, dtype=torch.float32)
    return torch.log(p / (1 - p))


def _preds(boxes, logits):
    return InstanceData(bboxes=torch.tensor(boxes, dtype=torch.float32),
                        scores=torch.as_tensor(logits, dtype=torch.float32))


def _gts(boxes, labels):
    return InstanceData(bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                        labels=torch.tensor(labels, dtype=torch.long))


def _pairs(result):
    return sorted(zip(result.query_inds.tolist(), result.gt_inds.tolist()))


def test_registered_in_task_utils():
    assigner = TASK_UTILS.build(dict(type='OneToManyAssigner', topk=4))
    assert isinstance(assigner, OneToManyAssigner) and assigner.topk == 4


def test_threshold_positives_and_match_score():
    gts = _gts([[0, 0, 10, 10], [20, 20, 30, 30]], [0, 1])
    logits = torch.full((5, 2), NEG)
    logits[0, 0] = _logit(0.9)  # q0 = g0 exactly, p=0.9:  M = 0.7 + 0.27 = 0.97
    logits[1, 0] = _logit(0.5)  # q1 IoU 0.5 with g0, p=.5: M = 0.35 + 0.15 = 0.50 >= 0.4
    logits[2, 0] = _logit(0.1)  # q2 IoU 0.2 with g0, p=.1: M = 0.14 + 0.03 = 0.17 < 0.4
    preds = _preds([[0, 0, 10, 10], [0, 0, 10, 5], [0, 0, 10, 2], [20, 20, 30, 30],
                    [50, 50, 60, 60]], logits)  # q3 = g1 with p=0: M = 0.7; q4 far: M = 0
    assigner = OneToManyAssigner()
    m = assigner.match_scores(preds, gts)
    assert torch.allclose(m[0, :3], torch.tensor([0.97, 0.50, 0.17]), atol=1e-5)
    assert torch.allclose(m[1, 3], torch.tensor(0.7), atol=1e-5)
    result = assigner.assign(preds, gts)
    assert _pairs(result) == [(0, 0), (1, 0), (3, 1)]
    # pairs of a GT come in descending M
    assert torch.allclose(result.match_scores[:2], torch.tensor([0.97, 0.50]), atol=1e-5)


def test_best_query_is_forced_positive_below_threshold():
    gts = _gts([[0, 0, 10, 10]], [0])
    preds = _preds([[0, 0, 10, 3], [0, 0, 10, 2], [40, 40, 50, 50]], torch.full((3, 1), NEG))
    # M = 0.21, 0.14, 0: nothing reaches 0.4, but the GT's best query is positive
    assert _pairs(OneToManyAssigner().assign(preds, gts)) == [(0, 0)]
    assert OneToManyAssigner(force_best_query=False).assign(preds, gts).num_pos == 0


def test_forced_query_of_a_gt_that_belongs_to_another_gt():
    # g1 (IoU 0.8 with g0) has as best query q0, but q0's best GT is g0: q0 stays with g0 and
    # g1 gets no positive at all.
    gts = _gts([[0, 0, 10, 10], [0, 0, 10, 8]], [0, 0])
    preds = _preds([[0, 0, 10, 10], [40, 40, 50, 50], [60, 60, 70, 70]],
                   torch.full((3, 1), NEG))
    result = OneToManyAssigner().assign(preds, gts)
    assert _pairs(result) == [(0, 0)]
    assert 1 not in result.gt_inds.tolist()


def test_query_can_be_positive_for_two_gts():
    gts = _gts([[0, 0, 10, 10], [0, 0, 10, 9]], [0, 0])
    # M rows (g0; g1): q0 .70/.63  q1 .63/.70  q2 .665/.663  q3 .49/.544
    preds = _preds([[0, 0, 10, 10], [0, 0, 10, 9], [0, 0, 10, 9.5], [0, 0, 10, 7]],
                   torch.full((4, 1), NEG))
    result = OneToManyAssigner().assign(preds, gts)
    # g0 has 2 positives (q0, q2) -> its top-2 {q0, q2}; g1 has 2 (q1, q3) -> top-2 {q1, q2}
    assert _pairs(result) == [(0, 0), (1, 1), (2, 0), (2, 1)]


def test_topk_per_gt():
    gts = _gts([[0, 0, 100, 100]], [0])
    probs = torch.linspace(0.05, 0.95, 10)
    preds = _preds([[0, 0, 100, 100]] * 10, _logit(probs)[:, None])  # all positive
    result = OneToManyAssigner(topk=6).assign(preds, gts)
    assert result.num_pos == 6
    assert sorted(result.query_inds.tolist()) == list(range(4, 10))  # the 6 highest M
    assert OneToManyAssigner(topk=3).assign(preds, gts).query_inds.tolist() == [9, 8, 7]


def test_cap_per_image_then_topk():
    torch.manual_seed(0)
    gts = _gts([[0, 0, 100, 100]], [0])
    probs = torch.linspace(0.05, 0.95, 10)
    preds = _preds([[0, 0, 100, 100]] * 10, _logit(probs)[:, None])
    # 10 positives capped to 3 at random; the GT then takes its top-3 queries by M
    result = OneToManyAssigner(max_pos_per_img=3).assign(preds, gts)
    assert result.query_inds.tolist() == [9, 8, 7]
    # two GTs: the cap bounds the total after top-K as well
    gts2 = _gts([[0, 0, 100, 100], [200, 200, 300, 300]], [0, 0])
    preds2 = _preds([[0, 0, 100, 100]] * 10 + [[200, 200, 300, 300]] * 10,
                    _logit(torch.cat([probs, probs]))[:, None])
    for seed in range(5):
        torch.manual_seed(seed)
        r = OneToManyAssigner(max_pos_per_img=5).assign(preds2, gts2)
        assert 1 <= r.num_pos <= 5
        assert OneToManyAssigner(max_pos_per_img=None).assign(preds2, gts2).num_pos == 12


def test_no_gt_and_bad_input():
    assigner = OneToManyAssigner()
    preds = _preds([[0, 0, 10, 10]], torch.zeros(1, 2))
    assert assigner.assign(preds, _gts([], [])).num_pos == 0
    with pytest.raises(ValueError, match='labels must lie in'):
        assigner.assign(preds, _gts([[0, 0, 5, 5]], [2]))
    with pytest.raises(ValueError, match='bboxes'):
        assigner.assign(_preds([[0, 0, 10]], torch.zeros(1, 2)), _gts([[0, 0, 5, 5]], [0]))
    with pytest.raises(ValueError, match='topk'):
        OneToManyAssigner(topk=0)


@pytest.mark.parametrize('where', ['logits', 'boxes'])
def test_non_finite_predictions_raise_divergence_not_nan_positives(where):
    """A NaN prediction stops with TrainingDivergedError instead of positives with NaN match
    scores. (IoU and sigmoid keep M finite for inf inputs; NaN is the only non-finite M.)"""
    logits = torch.full((3, 2), NEG)
    boxes = torch.tensor([[0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 12, 12]], dtype=torch.float)
    gts = _gts([[0, 0, 10, 10]], [0])
    assert OneToManyAssigner().assign(_preds(boxes.tolist(), logits), gts).num_pos >= 1
    (logits if where == 'logits' else boxes)[0, 0] = float('nan')
    with pytest.raises(TrainingDivergedError,
                       match='DAC one-to-many assignment cost has NaN/inf entries'):
        OneToManyAssigner().assign(_preds(boxes.tolist(), logits), gts)


def _tie_case(num_queries, a, b):
    """Queries a and b tie exactly for GT0's best score (0.3 * 0.5, no overlap); a's own best
    GT is GT1 (IoU 0.3 with it: M = 0.21), b's is GT0. Nothing reaches the 0.4 threshold, so
    every positive comes from forcing each GT's best query."""
    gts = _gts([[0, 0, 10, 10], [20, 20, 30, 30]], [0, 1])
    boxes = [[50, 50, 60, 60]] * num_queries
    boxes[a] = [20, 20, 30, 23]
    logits = torch.full((num_queries, 2), NEG)
    logits[a, 0] = logits[b, 0] = 0.0
    return _preds(boxes, logits), gts


# (Q, a, b): fewer than 64 queries, where CPU torch.topk(k=1) falls back to nth_element and
# its pick among ties is not the first index, and 64 or more, where it is
TIE_CASES = [(5, 0, 2), (5, 2, 0), (8, 1, 6), (8, 6, 1), (16, 3, 9), (16, 9, 3), (40, 7, 30),
             (40, 30, 7), (64, 10, 50), (64, 50, 10), (900, 12, 640), (900, 640, 12)]


@pytest.mark.parametrize('num_queries,a,b', TIE_CASES)
def test_tied_best_query_is_the_lowest_index(num_queries, a, b):
    """Pins the tie-break of the forced best query: the lowest query index (torch.argmax)."""
    preds, gts = _tie_case(num_queries, a, b)
    assigner = OneToManyAssigner()
    scores = assigner.match_scores(preds, gts)
    assert scores[0, a] == scores[0, b] == scores[0].max()  # a real tie
    assert scores[1].argmax() == a and scores[:, a].argmax() == 1 and scores[:, b].argmax() == 0
    pairs = _pairs(assigner.assign(preds, gts))
    if a < b:  # a is forced for GT0 but belongs to GT1: GT0 ends with no positive
        assert pairs == [(a, 1)]
    else:  # b is forced for GT0 and belongs to it: GT0 gets its top-1 query by M (a or b)
        assert len(pairs) == 2 and (a, 1) in pairs
        assert [q for q, g in pairs if g == 0][0] in (a, b)


@pytest.mark.parametrize('num_queries,a,b', [c for c in TIE_CASES if c[0] >= 64])
def test_tie_break_equals_topk1_from_64_queries_on_cpu(num_queries, a, b):
    """With 64 or more queries CPU torch.topk(k=1) (heap partial sort) also returns the first
    of tied maxima, so the forced query equals a topk(k=1) pick there (900 queries in DAC)."""
    preds, gts = _tie_case(num_queries, a, b)
    scores = OneToManyAssigner().match_scores(preds, gts)
    assert torch.equal(scores.topk(1, dim=1).indices[:, 0], scores.argmax(dim=1))
    assert int(scores.topk(1, dim=1).indices[0, 0]) == min(a, b)
