"""QueryGroup: one concept for every extra query group. A detector's own queries decoded as a
group reproduce its own predictions; the same group decoded by two detectors is index-aligned;
a CrossKD-style cross pass (teacher decoder + head on the student's memory) is one call with
gradients to the student; bad groups raise clear errors."""
import pytest
import torch
from toy_helpers import TOY_DETRS, build_toy, toy_inputs

from mmdet_ksdetr.distill.core import (QueryGroup, decode_query_group, decoder_inputs_for,
                                       get_detr_internals, own_queries_group, query_kind,
                                       random_group)


def _model(name, data_root, seed=0):
    cfg, model = build_toy(TOY_DETRS[name], data_root, seed)
    data = toy_inputs(model, cfg, data_root, 'val')
    return model.eval(), data['inputs'], data['data_samples']


@pytest.mark.parametrize('name', ['deformable', 'dino', 'dab', 'conditional', 'detr'])
def test_own_queries_as_a_group_reproduce_the_own_predictions(name, toy_data_root):
    model, inputs, samples = _model(name, toy_data_root)
    with torch.no_grad():
        it = get_detr_internals(model, inputs, samples)
        out = decode_query_group(model, it.decoder_inputs, own_queries_group('own', it))
    assert out.group.name == 'own' and out.group.num_queries == it.num_queries
    torch.testing.assert_close(out.cls_logits, it.cls_logits)
    torch.testing.assert_close(out.bbox_preds, it.bbox_preds)
    torch.testing.assert_close(out.hidden_states, it.hidden_states)


def test_groups_in_the_capture_equal_a_separate_decode(toy_data_root):
    model, inputs, samples = _model('deformable', toy_data_root)
    with torch.no_grad():
        it = get_detr_internals(model, inputs, samples)
        kind = query_kind(model, it.decoder_inputs)
        group = random_group('r', kind, 9, 2, it.embed_dims, 'cpu',
                             generator=torch.Generator().manual_seed(0))
        captured = get_detr_internals(model, inputs, samples, groups=[group]).groups['r']
        alone = decode_query_group(model, it.decoder_inputs, group)
    assert captured.group is group and captured.cls_logits.shape[:3] == (it.num_layers, 2, 9)
    torch.testing.assert_close(captured.cls_logits, alone.cls_logits, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(captured.bbox_preds, alone.bbox_preds, rtol=1e-4, atol=1e-5)


def test_cross_pass_teacher_decoder_on_student_memory(toy_data_root):
    """CrossKD's cross pass: the teacher's decoder and head read the student's encoder
    memory; gradients reach the student through the memory, never the teacher."""
    student, inputs, samples = _model('deformable', toy_data_root, seed=0)
    teacher, _, _ = _model('deformable', toy_data_root, seed=1)
    teacher.requires_grad_(False)
    s = get_detr_internals(student, inputs, samples)
    with torch.no_grad():
        t = get_detr_internals(teacher, inputs, samples)
    cross = decode_query_group(teacher, s.decoder_inputs, own_queries_group('cross', t))
    assert cross.cls_logits.shape == t.cls_logits.shape
    assert not torch.allclose(cross.cls_logits, t.cls_logits)  # another memory
    cross.cls_logits.sum().backward()
    assert student.backbone.conv1.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())


def test_bad_groups_raise_clear_errors(toy_data_root):
    model, inputs, samples = _model('deformable', toy_data_root)
    with torch.no_grad():
        it = get_detr_internals(model, inputs, samples)
    with pytest.raises(ValueError, match='query_pos'):
        decoder_inputs_for(model, it.decoder_inputs,
                           QueryGroup('g', query=torch.zeros(2, 3, 256)))
    with pytest.raises(ValueError, match=r'\(batch=2, N, 256\)'):
        decoder_inputs_for(model, it.decoder_inputs,
                           QueryGroup('g', query=torch.zeros(2, 3, 64),
                                      query_pos=torch.zeros(2, 3, 256)))
    with pytest.raises(ValueError, match='unique'):
        get_detr_internals(model, inputs, samples, groups=[own_queries_group('a', it)] * 2)
    with pytest.raises(ValueError, match='num must be'):
        random_group('g', 'embed', 0, 2, 256, 'cpu')
