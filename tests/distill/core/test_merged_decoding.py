"""Merged decoding: extra query groups decoded in the detector's own decoder pass (block-diagonal
self-attention through forward pre-hooks) give the outputs and gradients of separate
forward_decoder calls, on the five stock DETR variants; other decoders are refused; the
capture falls back to separate passes."""
import pytest
import torch
from toy_helpers import TOY_DETRS, build_toy_model, disable_dropout, load_toy_config, toy_batch

from mmdet_ksdetr.distill.core import (QueryGroup, capture_detr, decode_merged,
                                       decoder_inputs_for, get_detr_internals, mergeable_inputs,
                                       query_kind, random_group, supports_merged_decoding)

TOY = TOY_DETRS


def _build(rel, data_root):
    cfg = load_toy_config(rel, data_root)
    # train: DINO adds its denoising queries and mask
    model = disable_dropout(build_toy_model(cfg)).train()
    batch = toy_batch(cfg, data_root, 'train', 2)
    data = model.data_preprocessor(batch, True)
    return model, data['inputs'], data['data_samples']


def _query_groups(model, main):
    kind = query_kind(model, main)
    B, D = main['memory'].shape[0], main['memory'].shape[-1]
    gen = torch.Generator().manual_seed(5)
    return [random_group(f'g{n}', kind, n, B, D, 'cpu', generator=gen) for n in (7, 12)]


def _groups(model, main):
    return [decoder_inputs_for(model, main, g) for g in _query_groups(model, main)]


def _flat(outputs):
    refs = outputs.get('references')
    refs = [] if refs is None else (list(refs) if isinstance(refs, (list, tuple)) else [refs])
    return [outputs['hidden_states']] + refs


@pytest.mark.parametrize('name', list(TOY))
def test_merged_pass_equals_separate_passes(name, toy_data_root):
    model, inputs, samples = _build(TOY[name], toy_data_root)
    assert supports_merged_decoding(model)
    torch.manual_seed(1)
    main = get_detr_internals(model, inputs, samples, keep_denoising=True).decoder_inputs
    if name == 'dino':
        assert main['dn_mask'] is not None  # the main group's own mask is kept in its block
    groups = _groups(model, main)
    assert all(mergeable_inputs(main, g) for g in groups)

    separate = [model.forward_decoder(**main)] + [model.forward_decoder(**g) for g in groups]
    merged_main, merged_groups = decode_merged(model, main, groups)
    attn = model.decoder.layers[0].self_attn
    assert 'forward' not in vars(attn) and not attn._forward_pre_hooks  # hooks removed
    for ref, got in zip(separate, [merged_main] + merged_groups):
        assert set(ref) == set(got)
        for a, b in zip(_flat(ref), _flat(got)):
            assert a.shape == b.shape
            torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)

    # gradients of a loss over all groups are those of the separate passes
    def grads(outs):
        model.zero_grad()
        sum((o["hidden_states"] * (i + 1)).square().mean()
            for i, o in enumerate(outs)).backward(retain_graph=True)
        return [p.grad.clone() for p in model.decoder.parameters() if p.grad is not None]

    g_sep = grads(separate)
    g_mrg = grads([merged_main] + merged_groups)
    assert len(g_sep) == len(g_mrg) > 0
    for a, b in zip(g_sep, g_mrg):
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-5)


def test_capture_merges_or_falls_back(toy_data_root):
    model, inputs, samples = _build(TOY['deformable'], toy_data_root)
    make = lambda main: _query_groups(model, main)[1]  # noqa: E731
    out = {}
    for merge in (True, False):
        torch.manual_seed(1)
        capture = capture_detr(model, inputs, samples, loss=True, groups=[make],
                               merge_groups=merge)
        assert capture.merged_groups is merge
        out[merge] = (capture.losses, capture.internals)
    for k, v in out[False][0].items():
        torch.testing.assert_close(out[True][0][k], v, rtol=1e-4, atol=1e-5, msg=k)
    a, b = out[True][1], out[False][1]
    torch.testing.assert_close(a.hidden_states, b.hidden_states, rtol=1e-4, atol=1e-5)
    assert a.hidden_states.shape[2] == 30  # the main queries only
    ga, gb = a.groups['g12'], b.groups['g12']
    assert ga.hidden_states.shape[2] == 12 and ga.cls_logits.shape[2] == 12
    torch.testing.assert_close(ga.hidden_states, gb.hidden_states, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ga.cls_logits, gb.cls_logits, rtol=1e-4, atol=1e-5)


def test_unknown_decoders_and_inputs_are_not_merged(toy_data_root):
    # KS-DETR changes the encoder only: its decoder pass is mmdet's and may be merged
    model, inputs, samples = _build('toy/ks_detr/ks-deformable-detr_tiny-r18_1xb2-12e_toy.py',
                                    toy_data_root)
    assert supports_merged_decoding(model)
    # DAC-DETR's forward_decoder also runs its auxiliary decoder: not merged
    model, inputs, samples = _build(
        'toy/dac_detr/dac-deformable-detr-refine-twostage_tiny-r18_1xb2-12e_toy.py', toy_data_root)
    assert not supports_merged_decoding(model)
    model, inputs, samples = _build(TOY['deformable'], toy_data_root)
    main = get_detr_internals(model, inputs, samples).decoder_inputs
    group = _groups(model, main)[0]
    assert mergeable_inputs(main, group)
    other_memory = dict(group, memory=main['memory'].clone())
    assert not mergeable_inputs(main, other_memory)  # not the same memory: separate pass
    # DAC-DETR: the capture decodes its groups in separate passes
    model, inputs, samples = _build(
        'toy/dac_detr/dac-deformable-detr-refine-twostage_tiny-r18_1xb2-12e_toy.py', toy_data_root)
    assert not supports_merged_decoding(model)
    group = QueryGroup('g', query=torch.randn(2, 7, 256), query_pos=torch.randn(2, 7, 256),
                       reference_points=torch.rand(2, 7, 4))  # two-stage: 4-d references
    capture = capture_detr(model, inputs, samples, groups=[group])
    assert not capture.merged_groups
    assert capture.internals.groups['g'].hidden_states.shape[2] == 7
