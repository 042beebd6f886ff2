"""The TPRD component every distiller composes: one switch (checked once), refinement on the
teacher's predictions, decoupled-loss positives only when on; the base hands out targets."""

import pytest
import torch
from toy_helpers import build_toy, toy_inputs

from mmdet_ksdetr.distill.core import get_detr_internals
from mmdet_ksdetr.distill.tprd.tprd_switch import TPRD, TeacherTargets

CFGS = {
    'DETRDistill': 'toy/detr_distill/detr-distill-tprd_deformable-detr_tiny-r18_1xb2-12e_toy.py',
    'KDDETR': 'toy/kd_detr/kd-detr-tprd_deformable-detr_tiny-r18_1xb2-12e_toy.py',
    'D3ETR': 'toy/d3etr/d3etr-tprd_deformable-detr_tiny-r18_1xb2-12e_toy.py',
    'QSKD': 'toy/qskd/qskd-tprd_deformable-detr_tiny-r18_1xb2-12e_toy.py',
}


def _build(path, data_root, **algo):
    cfg, model = build_toy(path, data_root, replace=True, teacher_ckpt=None, **algo)
    return model, toy_inputs(model, cfg, data_root)


def test_switch_is_checked_once():
    with pytest.raises(TypeError, match='tprd must be True or False'):
        TPRD('yes', owner='X')
    assert TPRD(True).enabled and not TPRD().enabled


@pytest.mark.parametrize('name', list(CFGS))
def test_every_distiller_composes_the_same_component(name, toy_data_root):
    algo, data = _build(CFGS[name], toy_data_root)
    assert type(algo).__name__ == name
    assert isinstance(algo.tprd_targets, TPRD) and algo.tprd is True and algo.tprd_targets.enabled


def test_prediction_targets_on_and_off(toy_data_root):
    algo, data = _build(CFGS['KDDETR'], toy_data_root)
    samples = data['data_samples']
    with torch.no_grad():
        t = get_detr_internals(algo.teacher, data['inputs'], samples)
    on = algo.prediction_targets(t, samples)
    ref = algo.tprd_targets(t.cls_logits, t.bbox_preds, samples)
    torch.testing.assert_close(on.logits, ref.logits)
    assert torch.equal(on.pos_labels, ref.pos_labels) and (on.pos_labels >= 0).any()
    raw = algo.tprd_targets(t.cls_logits, t.bbox_preds, samples, refine=False)
    torch.testing.assert_close(raw.logits, t.cls_logits)
    assert torch.equal(raw.pos_gt_inds, ref.pos_gt_inds)  # same assignment either way
    algo.tprd_targets.enabled = False
    off = algo.prediction_targets(t, samples)
    assert isinstance(off, TeacherTargets) and off.pos_labels is None and not off.refined
    assert torch.equal(off.logits, t.cls_logits) and torch.equal(off.boxes, t.bbox_preds)
