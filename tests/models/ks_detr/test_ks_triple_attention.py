"""Triple / dual attention of KS-DETR (plain multi-head and multi-scale deformable), the sMLP
and the KS encoder layers: student path = stock mmcv/mmdet path, and gradient flow through the
shared weights (the knowledge-sharing mechanism)."""
import pytest
import torch
from mmcv.cnn.bricks.transformer import MultiheadAttention
from mmcv.ops import MultiScaleDeformableAttention
from mmdet.models.layers.transformer import DetrTransformerEncoderLayer

from mmdet_ksdetr.models.ks_detr.ks_deformable_triple_attention import \
    KSMultiScaleDeformableTripleAttention
from mmdet_ksdetr.models.ks_detr.ks_encoder_layers import (KSDetrTransformerEncoderLayer,
                                                           build_ks_cfg)
from mmdet_ksdetr.models.ks_detr.ks_smlp import KSSMLP, KSMarkFg
from mmdet_ksdetr.models.ks_detr.ks_triple_attention import KSMultiheadTripleAttention

E, HEADS, B, N = 16, 4, 2, 12


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, N, E, generator=g)
    x_t = torch.randn(B, N, E, generator=g)
    pos = torch.randn(B, N, E, generator=g)
    kpm = torch.zeros(B, N, dtype=torch.bool)
    kpm[1, 9:] = True
    return x, x_t, pos, kpm


def _mha(mode='triple'):
    torch.manual_seed(0)
    m = KSMultiheadTripleAttention(E, HEADS, mode=mode, batch_first=True)
    torch.nn.init.normal_(m.attn.out_proj.weight)
    return m


def test_student_stream_equals_stock_attention():
    m = _mha()
    stock = MultiheadAttention(E, HEADS, batch_first=True)
    stock.load_state_dict({k: v for k, v in m.state_dict().items() if 'teacher_' not in k})
    x, x_t, pos, kpm = _inputs()
    ref = stock(x, query_pos=pos, key_padding_mask=kpm)
    assert torch.equal(m(x, query_pos=pos, key_padding_mask=kpm), ref)  # no teacher: stock path
    streams = m(x, query_pos=pos, key_padding_mask=kpm, teacher_query=x_t)
    assert len(streams) == 3
    torch.testing.assert_close(streams[0], ref, atol=1e-5, rtol=1e-5)
    # the key-padding mask applies to A and A^t: teacher inputs at padded tokens of image 1
    # reach no valid token, neither through A^t V nor through A V^t
    x_t2 = x_t.clone()
    x_t2[1, 9:] += 100.
    streams2 = m(x, query_pos=pos, key_padding_mask=kpm, teacher_query=x_t2)
    torch.testing.assert_close(streams2[1][1, :9], streams[1][1, :9])
    torch.testing.assert_close(streams2[2][1, :9], streams[2][1, :9])
    x_t2[1, 0] += 1.  # a valid token does reach them
    streams3 = m(x, query_pos=pos, key_padding_mask=kpm, teacher_query=x_t2)
    assert not torch.allclose(streams3[1][1, :9], streams[1][1, :9])
    assert not torch.allclose(streams3[2][1, :9], streams[2][1, :9])
    assert m.teacher_in_proj_weight.shape == (3 * E, E)


@pytest.mark.parametrize('mode,count,rows', [('triple', 3, 3), ('dual_share_v', 2, 2),
                                             ('dual_share_a', 2, 1)])
def test_modes(mode, count, rows):
    m = _mha(mode)
    x, x_t, pos, kpm = _inputs()
    assert len(m(x, query_pos=pos, key_padding_mask=kpm, teacher_query=x_t)) == count
    assert m.teacher_in_proj_weight.shape == (rows * E, E)


def _grad_rows(w, loss):
    w.grad = None
    loss.backward(retain_graph=True)
    g = w.grad
    return [g[i * E:(i + 1) * E].abs().sum().item() for i in range(g.shape[0] // E)]


def test_teacher_streams_train_the_student_projections():
    """A^t V trains the student's W_v (not W_q/W_k); A V^t trains W_q and W_k (not W_v)."""
    m = _mha()
    x, x_t, pos, kpm = _inputs()
    _, share_v, share_a = m(x, query_pos=pos, key_padding_mask=kpm, teacher_query=x_t)
    w = m.attn.in_proj_weight
    q, k, v = _grad_rows(w, (share_v ** 2).sum())
    assert v > 0 and q == 0 and k == 0
    q, k, v = _grad_rows(w, (share_a ** 2).sum())
    assert q > 0 and k > 0 and v == 0
    # and each teacher stream trains its own teacher projections
    tq, tk, tv = _grad_rows(m.teacher_in_proj_weight, (share_v ** 2).sum())
    assert tq > 0 and tk > 0 and tv == 0
    tq, tk, tv = _grad_rows(m.teacher_in_proj_weight, (share_a ** 2).sum())
    assert tq == 0 and tk == 0 and tv > 0


def test_attention_dropout_path():
    """With attention dropout (training only) the maps are computed and dropped explicitly:
    the same streams as the fused path when nothing is dropped, and one dropped map A shared
    by the student and A V^t streams, as in the release."""
    m = _mha()
    x, x_t, pos, kpm = _inputs()
    fused = m(x, query_pos=pos, key_padding_mask=kpm, teacher_query=x_t)
    m.attn.dropout = 1e-12  # the dropout path, dropping nothing
    kept = m(x, query_pos=pos, key_padding_mask=kpm, teacher_query=x_t)
    for a, b in zip(kept, fused):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    m.attn.dropout = 0.5
    m.eval()  # no dropout in eval: the fused path
    for a, b in zip(m(x, query_pos=pos, key_padding_mask=kpm, teacher_query=x_t), fused):
        assert torch.equal(a, b)
    m.train()
    with torch.no_grad():  # teacher V = student V: A V^t is A V when both use one dropped A
        m.teacher_in_proj_weight[-E:] = m.attn.in_proj_weight[-E:]
        m.teacher_in_proj_bias[-E:] = m.attn.in_proj_bias[-E:]
    student, share_v, share_a = m(x, query_pos=pos, key_padding_mask=kpm, teacher_query=x)
    assert torch.equal(student, share_a)
    assert not torch.allclose(student, fused[0], atol=1e-3)  # something was dropped


def _msda(mode='triple'):
    torch.manual_seed(0)
    m = KSMultiScaleDeformableTripleAttention(
        embed_dims=E, num_heads=HEADS, num_levels=2, num_points=2, batch_first=True, mode=mode)
    torch.nn.init.normal_(m.attention_weights.weight, std=0.1)
    torch.nn.init.normal_(m.sampling_offsets.weight, std=0.1)
    return m


def _msda_inputs():
    spatial_shapes = torch.tensor([[3, 3], [2, 2]])
    level_start_index = torch.tensor([0, 9])
    n = 13
    g = torch.Generator().manual_seed(1)
    x = torch.randn(B, n, E, generator=g)
    x_t = torch.randn(B, n, E, generator=g)
    pos = torch.randn(B, n, E, generator=g)
    ref = torch.rand(B, n, 2, 2, generator=g)
    return dict(query=x, query_pos=pos, reference_points=ref, spatial_shapes=spatial_shapes,
                level_start_index=level_start_index), x_t


def test_deformable_student_stream_equals_stock():
    m = _msda()
    stock = MultiScaleDeformableAttention(embed_dims=E, num_heads=HEADS, num_levels=2,
                                          num_points=2, batch_first=True)
    stock.load_state_dict({k: v for k, v in m.state_dict().items() if 'teacher_' not in k})
    m.eval(), stock.eval()
    kw, x_t = _msda_inputs()
    ref = stock(**kw)
    assert torch.equal(m(**kw), ref)
    streams = m(**kw, teacher_query=x_t)
    assert len(streams) == 3
    torch.testing.assert_close(streams[0], ref, atol=1e-5, rtol=1e-5)
    assert not hasattr(m, 'teacher_sampling_offsets')  # v0: student's sampling locations


def test_deformable_teacher_streams_train_the_student():
    m = _msda()
    kw, x_t = _msda_inputs()
    _, share_v, share_a = m(**kw, teacher_query=x_t)

    def grads(loss):
        m.zero_grad()
        loss.backward(retain_graph=True)
        return {n: (p.grad.abs().sum().item() if p.grad is not None else 0.)
                for n, p in m.named_parameters() if n.endswith('weight')}

    g = grads((share_v ** 2).sum())  # (V, S, A^t)
    assert g['value_proj.weight'] > 0 and g['sampling_offsets.weight'] > 0
    assert g['attention_weights.weight'] == 0 and g['teacher_attention_weights.weight'] > 0
    g = grads((share_a ** 2).sum())  # (V^t, S, A)
    assert g['attention_weights.weight'] > 0 and g['sampling_offsets.weight'] > 0
    assert g['value_proj.weight'] == 0 and g['teacher_value_proj.weight'] > 0


@pytest.mark.parametrize('mode', ['triple', 'dual_share_v', 'dual_share_a'])
def test_deformable_shared_sampling_equals_stacked_mmcv(mode):
    """The CPU path samples each distinct value map once; it must equal mmcv's function on the
    streams stacked along the batch, in value and in every gradient."""
    from mmcv.ops.multi_scale_deform_attn import multi_scale_deformable_attn_pytorch
    g = torch.Generator().manual_seed(3)
    shapes = torch.tensor([[5, 4], [3, 2], [1, 1]])
    n = int((shapes[:, 0] * shapes[:, 1]).sum())
    v = torch.randn(B, n, HEADS, 4, generator=g).requires_grad_()
    v_t = torch.randn(B, n, HEADS, 4, generator=g).requires_grad_()
    loc = (torch.rand(B, n, HEADS, 3, 2, 2, generator=g) * 1.2 - 0.1).requires_grad_()
    a = torch.rand(B, n, HEADS, 3, 2, generator=g).requires_grad_()
    a_t = torch.rand(B, n, HEADS, 3, 2, generator=g).requires_grad_()
    values, weights = {'triple': ([v, v, v_t], [a, a_t, a]),
                       'dual_share_v': ([v, v], [a, a_t]),
                       'dual_share_a': ([v, v_t], [a, a])}[mode]
    m = _msda(mode)
    ours = m._streams_shared_sampling(values, weights, loc, shapes)
    ref = multi_scale_deformable_attn_pytorch(torch.cat(values), shapes,
                                              loc.repeat(len(values), 1, 1, 1, 1, 1),
                                              torch.cat(weights))
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=1e-5)
    leaves = [v, v_t, loc, a, a_t]
    w = torch.randn(ref.shape, generator=g)
    g_ours = torch.autograd.grad((ours * w).sum(), leaves, allow_unused=True)
    g_ref = torch.autograd.grad((ref * w).sum(), leaves, allow_unused=True)
    for x, y in zip(g_ours, g_ref):
        assert (x is None) == (y is None)
        if x is not None:
            torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-4)


def test_smlp_replaces_foreground_tokens_only():
    torch.manual_seed(0)
    smlp = KSSMLP(E)
    x, *_ = _inputs()
    fg = torch.zeros(B, N, dtype=torch.bool)
    fg[0, :3] = True
    out = smlp(x, fg)
    assert torch.equal(out[~fg], x[~fg])
    torch.testing.assert_close(out[fg], torch.relu(smlp.fc(x[fg])))
    mark = KSMarkFg(E)(x, fg)
    assert torch.equal(mark[..., :-1], x[..., :-1])
    assert torch.equal(mark[..., -1], fg.float())


def test_encoder_layer_streams_share_norms_and_ffn():
    cfg = dict(self_attn_cfg=dict(embed_dims=E, num_heads=HEADS, dropout=0.0),
               ffn_cfg=dict(embed_dims=E, feedforward_channels=32))
    torch.manual_seed(0)
    layer = KSDetrTransformerEncoderLayer(**cfg).eval()
    stock = DetrTransformerEncoderLayer(**cfg).eval()
    stock.load_state_dict({k: v for k, v in layer.state_dict().items() if 'teacher_' not in k})
    x, _, pos, kpm = _inputs()
    fg = torch.rand(B, N) > 0.5
    memory, teachers = layer(x, pos, kpm, ks_fg_mask=fg)
    torch.testing.assert_close(memory, stock(x, pos, kpm), atol=1e-5, rtol=1e-5)
    assert len(teachers) == 2
    # stream i is LN2(FFN(LN1(x + O_i))) with the same modules as the student stream
    x_t = layer.teacher_input(x, fg)
    streams = layer.self_attn(x, query_pos=pos, key_padding_mask=kpm, teacher_query=x_t)
    for z, o in zip(teachers, streams[1:]):
        torch.testing.assert_close(z, layer.norms[1](layer.ffn(layer.norms[0](o))))


def test_bad_ks_cfg_is_reported():
    with pytest.raises(ValueError, match='ks_cfg.mode must be one of'):
        build_ks_cfg(dict(mode='quadruple'))
    with pytest.raises(ValueError, match='unknown ks_cfg keys'):
        build_ks_cfg(dict(mdoe='triple'))
    with pytest.raises(ValueError, match='teacher_input.embed_dims=8'):
        KSDetrTransformerEncoderLayer(
            self_attn_cfg=dict(embed_dims=E, num_heads=HEADS),
            ffn_cfg=dict(embed_dims=E, feedforward_channels=32),
            ks_cfg=dict(teacher_input=dict(type='KSSMLP', embed_dims=8)))
