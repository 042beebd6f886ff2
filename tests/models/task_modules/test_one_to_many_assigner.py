"""OneToManyAssigner (DAC-DETR spec A2) on hand-built cases."""
import pytest
import torch
from mmdet.registry import TASK_UTILS
from mmengine.structures import InstanceData

from mmdet_ksdetr.models.task_modules.one_to_many_assigner import OneToManyAssigner
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

