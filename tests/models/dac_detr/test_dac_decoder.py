"""DAC decoders: the O-stream is the stock decoder, the C-stream shares cross-attention / norms /
FFN, skips self-attention (except the optional shared layer 0) and adds no parameter."""
import copy

import pytest
import torch
from mmdet.models.layers import (DeformableDetrTransformerDecoder, DinoTransformerDecoder,
                                 coordinate_to_encoding, inverse_sigmoid)

from mmdet_ksdetr.models.dac_detr.dac_decoder import (DACDeformableDetrTransformerDecoder,
                                                      DACDinoTransformerDecoder)

DIM, LEVELS, LAYERS = 256, 2, 2
SHAPES = torch.tensor([[6, 6], [3, 3]])


def _layer_cfg():
    return dict(
        self_attn_cfg=dict(embed_dims=DIM, num_heads=8, dropout=0.0),
        cross_attn_cfg=dict(embed_dims=DIM, num_levels=LEVELS, num_points=2, dropout=0.0),
        ffn_cfg=dict(embed_dims=DIM, feedforward_channels=64, ffn_drop=0.0))


def _inputs(bs=2, nq=7, box=True):
    g = torch.Generator().manual_seed(0)
    num_value = int((SHAPES[:, 0] * SHAPES[:, 1]).sum())
    ref = torch.rand(bs, nq, 4 if box else 2, generator=g) * 0.6 + 0.2
    return dict(
        query=torch.randn(bs, nq, DIM, generator=g),
        value=torch.randn(bs, num_value, DIM, generator=g),
        key_padding_mask=torch.zeros(bs, num_value, dtype=torch.bool),
        reference_points=ref,
        spatial_shapes=SHAPES,
        level_start_index=torch.tensor([0, 36]),
        valid_ratios=torch.ones(bs, LEVELS, 2))


def _reg_branches():
    torch.manual_seed(1)
    return torch.nn.ModuleList([torch.nn.Linear(DIM, 4) for _ in range(LAYERS)])


def _randomise(module):
    torch.manual_seed(2)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * 0.1 + (1.0 if p.dim() == 1 else 0.0))


def _dino_pair(share=True):
    dac = DACDinoTransformerDecoder(num_layers=LAYERS, layer_cfg=_layer_cfg(),
                                    post_norm_cfg=None, share_first_self_attn=share).eval()
    _randomise(dac)
    stock = DinoTransformerDecoder(num_layers=LAYERS, layer_cfg=_layer_cfg(),
                                   post_norm_cfg=None).eval()
    stock.load_state_dict(dac.state_dict(), strict=True)  # same names and shapes
    return dac, stock


def _dn_mask(nq, num_dn=4):
    mask = torch.zeros(nq, nq, dtype=torch.bool)
    mask[num_dn:, :num_dn] = True
    return mask


def _manual_dino_c_stream(dac, inp, reg, share, attn_mask):
    """The C-stream written out from the layers' modules."""
    vr = torch.cat([inp['valid_ratios'], inp['valid_ratios']], -1)[:, None]
    y, ref = inp['query'], inp['reference_points']
    hidden, refs = [], [ref]
    for lid, layer in enumerate(dac.layers):
        ref_in = ref[:, :, None] * vr
        pos = dac.ref_point_head(coordinate_to_encoding(ref_in[:, :, 0]))
        if lid == 0 and share:
            y = layer.norms[0](layer.self_attn(query=y, key=y, value=y, query_pos=pos,
                                               key_pos=pos, attn_mask=attn_mask))
        y = layer.norms[1](layer.cross_attn(
            query=y, value=inp['value'], query_pos=pos, key_padding_mask=inp['key_padding_mask'],
            reference_points=ref_in, spatial_shapes=SHAPES,
            level_start_index=inp['level_start_index']))
        y = layer.norms[2](layer.ffn(y))
        new = (reg[lid](y) + inverse_sigmoid(ref, eps=1e-3)).sigmoid()
        ref = new.detach()
        hidden.append(dac.norm(y))
        refs.append(new)
    return torch.stack(hidden), torch.stack(refs)


@pytest.mark.parametrize('share', [True, False])
def test_dino_decoder_o_stream_is_stock_and_c_stream_matches_formula(share):
    dac, stock = _dino_pair(share)
    inp, reg = _inputs(), _reg_branches()
    mask = _dn_mask(inp['query'].shape[1])
    with torch.no_grad():
        ref_h, ref_r = stock(self_attn_mask=mask, reg_branches=reg, **inp)
        plain_h, plain_r = dac(self_attn_mask=mask, reg_branches=reg, **inp)
        h, r, h_c, r_c = dac(self_attn_mask=mask, reg_branches=reg, with_c_stream=True, **inp)
        man_h, man_r = _manual_dino_c_stream(dac, inp, reg, share, mask)
    assert torch.equal(plain_h, ref_h) and torch.equal(plain_r, ref_r)
    torch.testing.assert_close(h, ref_h, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(r, ref_r, atol=1e-5, rtol=1e-5)
    assert h_c.shape == h.shape and r_c.shape == r.shape == (LAYERS + 1, 2, 7, 4)
    torch.testing.assert_close(h_c, man_h, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(r_c, man_r, atol=1e-5, rtol=1e-5)
    # with layer-0 sharing the C-stream's layer 0 is the O-stream's; later layers differ
    assert torch.allclose(h_c[0], h[0], atol=1e-6) == share
    assert not torch.allclose(h_c[-1], h[-1], atol=1e-3)


@pytest.mark.parametrize('share', [True, False])
def test_dino_c_stream_gradients_skip_self_attention(share):
    dac, _ = _dino_pair(share)
    dac.train()
    inp, reg = _inputs(), _reg_branches()
    _, _, h_c, r_c = dac(self_attn_mask=None, reg_branches=reg, with_c_stream=True, **inp)
    (h_c.sum() + r_c[1:].sum()).backward()

    def grad_norm(module):
        return sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)

    assert grad_norm(dac.layers[0].self_attn) > 0 if share else grad_norm(
        dac.layers[0].self_attn) == 0
    assert grad_norm(dac.layers[1].self_attn) == 0  # never used by the C-stream
    assert grad_norm(dac.layers[1].norms[0]) == 0
    for lid in range(LAYERS):  # shared pieces get gradient from the C-stream
        for name in ('cross_attn', 'ffn'):
            assert grad_norm(getattr(dac.layers[lid], name)) > 0
        assert grad_norm(dac.layers[lid].norms[1]) > 0 and grad_norm(dac.layers[lid].norms[2]) > 0
    assert grad_norm(dac.ref_point_head) > 0 and grad_norm(dac.norm) > 0


@pytest.mark.parametrize('box', [True, False])
def test_deformable_decoder_o_stream_is_stock_and_c_stream_shares_query_pos(box):
    dac = DACDeformableDetrTransformerDecoder(num_layers=LAYERS, layer_cfg=_layer_cfg(),
                                              post_norm_cfg=None,
                                              share_first_self_attn=False).eval()
    _randomise(dac)
    stock = DeformableDetrTransformerDecoder(num_layers=LAYERS, layer_cfg=_layer_cfg(),
                                             post_norm_cfg=None).eval()
    stock.load_state_dict(dac.state_dict(), strict=True)
    inp, reg = _inputs(box=box), _reg_branches()
    query_pos = torch.randn(inp['query'].shape, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref_h, ref_r = stock(query_pos=query_pos, reg_branches=reg, **inp)
        h, r, h_c, r_c = dac(query_pos=query_pos, reg_branches=reg, with_c_stream=True, **inp)
        # the C-stream by hand: no self-attention, the same (fixed) query_pos
        y, ref = inp['query'], inp['reference_points']
        for lid, layer in enumerate(dac.layers):
            vr = inp['valid_ratios']
            vr = torch.cat([vr, vr], -1)[:, None] if ref.shape[-1] == 4 else vr[:, None]
            y = layer.norms[1](layer.cross_attn(
                query=y, value=inp['value'], query_pos=query_pos,
                key_padding_mask=inp['key_padding_mask'], reference_points=ref[:, :, None] * vr,
                spatial_shapes=SHAPES, level_start_index=inp['level_start_index']))
            y = layer.norms[2](layer.ffn(y))
            delta = reg[lid](y)
            if ref.shape[-1] == 4:
                ref = (delta + inverse_sigmoid(ref)).sigmoid()
            else:  # 2-d points become 4-d boxes after the first refinement, as in mmdet
                ref = torch.cat([delta[..., :2] + inverse_sigmoid(ref), delta[..., 2:]],
                                -1).sigmoid()
    torch.testing.assert_close(h, ref_h, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(r, ref_r, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(h_c[-1], y, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(r_c[-1], ref, atol=1e-5, rtol=1e-5)


def test_dac_decoder_adds_no_parameter_and_checks_config():
    dac, stock = _dino_pair()
    assert [(k, v.shape) for k, v in dac.state_dict().items()] == \
        [(k, v.shape) for k, v in stock.state_dict().items()]
    with pytest.raises(ValueError, match='return_intermediate=True'):
        DACDinoTransformerDecoder(num_layers=1, layer_cfg=copy.deepcopy(_layer_cfg()),
                                  post_norm_cfg=None, return_intermediate=False)
