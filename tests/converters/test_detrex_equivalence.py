"""The pieces where detrex's DINO / Deformable-DETR differ from mmdet's defaults, re-derived
here from the release's definitions and compared with our modules on converted weights:
sine positional encoding (temperature 10000, offset -0.5), ChannelMapper convs with bias before
GroupNorm, heads and box refinement with ``inverse_sigmoid`` clamped at 1e-3, two-stage
proposals and their query embedding, DINO's (y, x, w, h) query sine embedding. Then shrunken
releases (1 encoder / 2 decoder layers, 20 queries; key sets as detrex builds them) convert,
load strictly and run ``mode='tensor'`` and ``predict``."""
import copy
import math
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmdet.models.layers import coordinate_to_encoding
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.config import Config

from mmdet_ksdetr.converters.release import convert_checkpoint
from mmdet_ksdetr.models.detrex import DetrexDeformableDetrTransformerDecoder
from converters.detrex_fixtures import scaled_random, shrunk_shapes
from toy_helpers import CONFIGS

SHRUNK = dict(enc=1, dec=2, nq=20, ffn=64)
CASES = {  # shrunken release -> its config
    'dino-4scale_r50': 'dino-4scale-detrex_r50_8xb2-12e_coco.py',
    'deformable-detr_r50': 'deformable-detr-detrex_r50_8xb2-50e_coco.py',
    'deformable-detr-refine-twostage_r50':
        'deformable-detr-refine-twostage-detrex_r50_8xb2-50e_coco.py',
}


# ---- the release's definitions, written from reading detrex -------------------------------
def release_logit(x, eps=1e-3):
    """detrex.utils.inverse_sigmoid."""
    x = x.clamp(0, 1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


def release_sine_position(mask, feats=128, temperature=10000, offset=-0.5, eps=1e-6):
    """detrex PositionEmbeddingSine(normalize=True): (bs, 2 * feats, h, w), y half first."""
    valid = (~mask).float()
    ys = valid.cumsum(1)
    xs = valid.cumsum(2)
    ys = (ys + offset) / (ys[:, -1:, :] + eps) * 2 * math.pi
    xs = (xs + offset) / (xs[:, :, -1:] + eps) * 2 * math.pi
    freq = temperature ** (2 * (torch.arange(feats) // 2).float() / feats)

    def interleave(v):
        a = v[..., None] / freq
        return torch.stack([a[..., 0::2].sin(), a[..., 1::2].cos()], -1).flatten(3)
    return torch.cat([interleave(ys), interleave(xs)], -1).permute(0, 3, 1, 2)


def release_sine_coords(boxes, feats=128, temperature=10000):
    """detrex get_sine_pos_embed(exchange_xy=True) of (cx, cy, w, h): (y, x, w, h) blocks."""
    freq = temperature ** (2 * (torch.arange(feats) // 2).float() / feats)
    a = boxes[..., None] * 2 * math.pi / freq
    emb = torch.stack([a[..., 0::2].sin(), a[..., 1::2].cos()], -1).flatten(-2)
    return torch.cat([emb[..., 1, :], emb[..., 0, :], emb[..., 2, :], emb[..., 3, :]], -1)


def release_proposal_embed(logits, feats=128, temperature=10000):
    """detrex DeformableDetrTransformer.get_proposal_pos_embed: (cx, cy, w, h) blocks."""
    freq = temperature ** (2 * (torch.arange(feats) // 2).float() / feats)
    a = logits.sigmoid()[..., None] * 2 * math.pi / freq
    return torch.stack([a[..., 0::2].sin(), a[..., 1::2].cos()], -1).flatten(2)


def release_proposals(shapes, bs):
    """detrex gen_encoder_output_proposals' boxes (no padding): logits, inf near borders."""
    out = []
    for lvl, (h, w) in enumerate(shapes):
        gy, gx = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing='ij')
        cxcy = torch.stack([(gx + 0.5) / w, (gy + 0.5) / h], -1).reshape(-1, 2)
        out.append(torch.cat([cxcy, torch.full_like(cxcy, 0.05 * 2 ** lvl)], -1))
    boxes = torch.cat(out)[None].repeat(bs, 1, 1)
    keep = ((boxes > 0.01) & (boxes < 0.99)).all(-1, keepdim=True)
    return torch.log(boxes / (1 - boxes)).masked_fill(~keep, float('inf')), keep


def release_neck(state, inputs):
    """detrex ChannelMapper(kernel_size=1, bias=True, GroupNorm(32)) + one extra 3x3/2 conv on
    the last backbone map."""
    def conv_gn(x, p, **kw):
        y = F.conv2d(x, state[p + '.conv.weight'], state[p + '.conv.bias'], **kw)
        return F.group_norm(y, 32, state[p + '.norm.weight'], state[p + '.norm.bias'])
    outs = [conv_gn(x, f'neck.convs.{i}') for i, x in enumerate(inputs)]
    return outs + [conv_gn(inputs[-1], 'neck.extra_convs.0', stride=2, padding=1)]


def release_head(state, layer, hidden, reference):
    """detrex's per-layer prediction: class_embed[l](h); sigmoid(bbox_embed[l](h) + logit(ref))
    (cx, cy only when the reference is a point)."""
    cls = F.linear(hidden, state[f'class_embed.{layer}.weight'], state[f'class_embed.{layer}.bias'])
    x = hidden
    for k in range(3):
        x = F.linear(x, state[f'bbox_embed.{layer}.layers.{k}.weight'],
                     state[f'bbox_embed.{layer}.layers.{k}.bias'])
        x = x.relu() if k < 2 else x
    ref = release_logit(reference)
    if ref.shape[-1] == 2:
        ref = torch.cat([ref, torch.zeros_like(ref)], -1)
    return cls, (x + ref).sigmoid()


# ---- helpers ------------------------------------------------------------------------------
def shrunk_release(name, seed=0):
    return scaled_random(shrunk_shapes(name), seed)


def shrunk_config(name):
    cfg = Config.fromfile(osp.join(CONFIGS, 'detrex', CASES[name]))
    m = cfg.model
    m.num_queries = SHRUNK['nq']
    m.test_cfg.max_per_img = SHRUNK['nq']
    m.encoder.num_layers, m.decoder.num_layers = SHRUNK['enc'], SHRUNK['dec']
    m.encoder.layer_cfg.ffn_cfg.feedforward_channels = SHRUNK['ffn']
    m.decoder.layer_cfg.ffn_cfg.feedforward_channels = SHRUNK['ffn']
    if 'dn_cfg' in m:
        m.dn_cfg.group_cfg.num_dn_queries = 10
    return cfg


_BUILT = {}


def converted_model(name):
    """(release state, our model with it converted and strictly loaded, in eval mode)."""
    if name not in _BUILT:
        state = shrunk_release(name)
        cfg = shrunk_config(name)
        ckpt = convert_checkpoint({'model': state}, source='detrex')
        torch.manual_seed(0)
        model = MODELS.build(copy.deepcopy(cfg.model))
        model.load_state_dict(ckpt['state_dict'], strict=True)
        _BUILT[name] = (state, model.eval())
    return _BUILT[name]


def samples(bs, h, w):
    return [DetDataSample(metainfo=dict(img_shape=(h, w), batch_input_shape=(h, w),
                                        ori_shape=(h, w), scale_factor=(1.0, 1.0)))
            for _ in range(bs)]


# ---- the distinctive pieces -----------------------------------------------------------------
def test_positional_encoding_is_the_releases():
    _, model = converted_model('dino-4scale_r50')
    mask = torch.zeros(2, 6, 9, dtype=torch.bool)
    mask[1, 4:, :] = True
    mask[1, :, 7:] = True
    ours = model.positional_encoding(mask)
    torch.testing.assert_close(ours, release_sine_position(mask), rtol=0, atol=1e-5)
    # mmdet's own DINO setting (temperature 20, offset 0) is not the release's
    assert (release_sine_position(mask, temperature=20, offset=0.0) - ours).abs().max() > 0.1


@pytest.mark.parametrize('name', ['dino-4scale_r50', 'deformable-detr_r50'])
def test_neck_has_the_releases_conv_biases(name):
    state, model = converted_model(name)
    g = torch.Generator().manual_seed(1)
    inputs = [torch.randn(1, c, s, s, generator=g) for c, s in ((512, 8), (1024, 4), (2048, 2))]
    with torch.no_grad():
        ours = model.neck(tuple(inputs))
    for a, b in zip(ours, release_neck(state, inputs)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-4)


@pytest.mark.parametrize('name', list(CASES))
def test_head_clamps_references_as_the_release(name):
    state, model = converted_model(name)
    g = torch.Generator().manual_seed(2)
    dim = 2 if name == 'deformable-detr_r50' else 4  # plain Deformable DETR: point references
    hidden = torch.randn(2, 1, 5, 256, generator=g)
    refs = torch.rand(3, 1, 5, dim, generator=g)
    refs[:, 0, :2] = torch.tensor([0.0, 1.0, 2e-4, 0.9998])[:dim]  # where the clamp matters
    with torch.no_grad():
        cls, boxes = model.bbox_head(hidden, list(refs))
        for layer in range(2):
            want_cls, want_boxes = release_head(state, layer, hidden[layer], refs[layer])
            torch.testing.assert_close(cls[layer], want_cls, rtol=0, atol=1e-5)
            torch.testing.assert_close(boxes[layer], want_boxes, rtol=0, atol=1e-6)


def test_deformable_refinement_clamps_as_the_release():
    _, model = converted_model('deformable-detr-refine-twostage_r50')
    assert isinstance(model.decoder, DetrexDeformableDetrTransformerDecoder)
    g = torch.Generator().manual_seed(3)
    shapes = torch.tensor([[4, 4], [2, 2], [1, 1], [1, 1]])
    start = torch.cat([shapes.new_zeros(1), shapes.prod(1).cumsum(0)[:-1]])
    value = torch.randn(1, int(shapes.prod(1).sum()), 256, generator=g)
    ref = torch.rand(1, 6, 4, generator=g)
    ref[0, :2] = torch.tensor([[0.0, 1.0, 2e-4, 0.9998], [0.5, 1.0, 1.0, 1e-5]])
    with torch.no_grad():
        hidden, refs = model.decoder(
            query=torch.randn(1, 6, 256, generator=g),
            query_pos=torch.randn(1, 6, 256, generator=g),
            value=value, key_padding_mask=None, reference_points=ref, spatial_shapes=shapes,
            level_start_index=start, valid_ratios=torch.ones(1, 4, 2),
            reg_branches=model.bbox_head.reg_branches)
        prev = ref
        for layer in range(2):  # reference_{l+1} = sigmoid(reg_l(h_l) + logit_1e-3(reference_l))
            want = (model.bbox_head.reg_branches[layer](hidden[layer]) +
                    release_logit(prev)).sigmoid()
            torch.testing.assert_close(refs[layer], want, rtol=0, atol=1e-6)
            prev = refs[layer]


def test_two_stage_proposals_and_query_embedding_are_the_releases():
    _, model = converted_model('deformable-detr-refine-twostage_r50')
    shapes = [(6, 9), (3, 5), (2, 3), (1, 2)]
    n = sum(h * w for h, w in shapes)
    memory = torch.randn(2, n, 256, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        out_memory, proposals = model.gen_encoder_output_proposals(
            memory, torch.zeros(2, n, dtype=torch.bool), torch.tensor(shapes))
    want, keep = release_proposals(shapes, 2)
    assert torch.equal(torch.isinf(proposals), torch.isinf(want))
    torch.testing.assert_close(proposals[keep.expand_as(want)], want[keep.expand_as(want)],
                               rtol=0, atol=1e-5)
    want_memory = model.memory_trans_norm(model.memory_trans_fc(memory.masked_fill(~keep, 0)))
    torch.testing.assert_close(out_memory, want_memory, rtol=0, atol=1e-6)
    logits = torch.randn(2, 7, 4, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(model.get_proposal_pos_embed(logits),
                               release_proposal_embed(logits), rtol=0, atol=1e-5)


def test_dino_query_sine_embedding_is_the_releases():
    boxes = torch.rand(2, 7, 4, generator=torch.Generator().manual_seed(6))
    torch.testing.assert_close(coordinate_to_encoding(boxes), release_sine_coords(boxes),
                               rtol=0, atol=1e-5)


# ---- shrunken releases end to end -----------------------------------------------------------
@pytest.mark.parametrize('name', list(CASES))
def test_shrunken_release_runs_tensor_and_predict(name):
    state, model = converted_model(name)
    images = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(7))
    data_samples = samples(2, 64, 96)
    with torch.no_grad():
        cls, boxes = model(images, data_samples, mode='tensor')
        head_in = model.forward_transformer(model.extract_feat(images), data_samples)
        preds = model(images, samples(2, 64, 96), mode='predict')
    assert cls.shape == (SHRUNK['dec'], 2, SHRUNK['nq'], 80) and boxes.shape[-1] == 4
    # every layer's outputs are the release's head applied to that layer's decoder state
    for layer in range(SHRUNK['dec']):
        want_cls, want_boxes = release_head(state, layer, head_in['hidden_states'][layer],
                                            head_in['references'][layer])
        torch.testing.assert_close(cls[layer], want_cls, rtol=0, atol=1e-5)
        torch.testing.assert_close(boxes[layer], want_boxes, rtol=0, atol=1e-6)
    for p in preds:  # detrex keeps the top num_queries (query, class) scores per image
        inst = p.pred_instances
        assert len(inst) == SHRUNK['nq'] and torch.isfinite(inst.bboxes).all()
        assert (inst.scores[:-1] >= inst.scores[1:]).all() and inst.labels.max() < 80
