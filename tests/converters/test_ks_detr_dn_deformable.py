"""KS-DN-Deformable-DETR release checkpoints (format ``ks-detr``) -> DetrexDNDeformableDETR.

The release's full R50 key set (tests/data/releases/ks_detr_ks-dn-deformable-detr_r50.json,
built by KS-DETR's own code) drops the KS teacher stream and the sMLP and loads strictly into
configs/ks_detr/release/ks-dn-deformable-detr-release_r50_8xb2-12e_coco.py; wrong inputs stop
with one line. On a shrunken variant (2 encoder / 2 decoder layers, 16 queries) ``predict``,
``mode='tensor'`` and ``loss`` run, and every decoder layer's logits and boxes are those of the
release's inference forward, re-derived below from reading the release (KSDNDeformableDETR,
KSDNDeformableDetrTransformer{,Encoder,Decoder} and detrex's layers)."""
import copy
import json
import math
import os.path as osp
import re

import pytest
import torch
import torch.nn.functional as F
from mmdet.models.dense_heads import DeformableDETRHead
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.structures import InstanceData
from converters.test_detrex_dab import build, release_state, run_predict_and_tensor
from converters.detrex_fixtures import link_heads, scaled_random
from converters.test_detrex_equivalence import (release_head, release_logit,
                                                release_neck, release_sine_coords,
                                                release_sine_position)

from mmdet_ksdetr.converters.release import (ReleaseConversionError, convert_checkpoint,
                                             detect_format)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DATA = osp.join(ROOT, 'tests/data/releases/')
FIXTURE = DATA + 'ks_detr_ks-dn-deformable-detr_r50.json'
RELEASE_CONFIGS = osp.join(ROOT, 'configs/ks_detr/release/')
CONFIG = RELEASE_CONFIGS + 'ks-dn-deformable-detr-release_r50_8xb2-12e_coco.py'
TEACHER = re.compile(r'^transformer\.encoder\.layers\.5\.attentions\.0\.'
                     r'(attention_weights|value_proj)_teacher\.')
SMALL = {'model.num_queries': 16, 'model.encoder.num_layers': 2,
         'model.decoder.num_layers': 2}


def _one_line(excinfo):
    msg = str(excinfo.value)
    assert '\n' not in msg
    return msg


def small_cfg():
    cfg = Config.fromfile(CONFIG)
    cfg.merge_from_dict(SMALL)
    return cfg


def shrunk_release(seed=0):
    """The release key set with 2 encoder layers (the KS layer, 5, becomes the last one, 1),
    2 decoder layers and 16 queries; values that keep activations in range, the decoder's
    box-head links tied as the release ties them."""
    with open(FIXTURE) as f:
        keys = json.load(f)['keys']
    shapes = {}
    for key, shape in keys.items():
        shape = tuple(shape)
        m = re.match(r'(transformer\.encoder\.layers\.)(\d+)(\..*)', key)
        if m:
            if m.group(2) in ('0', '5'):
                shapes[m.group(1) + ('0' if m.group(2) == '0' else '1') + m.group(3)] = shape
            continue
        m = re.match(r'(?:transformer\.decoder\.layers|(?:transformer\.decoder\.)?'
                     r'(?:class|bbox)_embed)\.(\d+)\.', key)
        if m and int(m.group(1)) >= 2:
            continue
        if key in ('tgt_embed.weight', 'refpoint_embed.weight'):
            shape = (16, shape[1])
        shapes[key] = shape
    state = scaled_random(shapes, seed)
    # anchors within 1e-3 of 0 / 1, where detrex's inverse_sigmoid clamp (1e-3) decides
    state['refpoint_embed.weight'][:3] = torch.tensor([[-8.0, 0.5, 9.0, -1.0],
                                                       [8.5, -0.3, -9.0, 0.2],
                                                       [0.1, 9.5, 0.4, -8.0]])
    return state


_CACHE = {}


def full_release():
    """The full R50 key set with seeded random values (made once: 40M values)."""
    if 'full' not in _CACHE:
        _CACHE['full'] = link_heads(release_state(FIXTURE))
    return dict(_CACHE['full'])


def converted_small_model():
    """(release state, the shrunken model with it converted and strictly loaded, eval)."""
    if 'small' not in _CACHE:
        state = shrunk_release()
        out = convert_checkpoint(dict(model=state), cfg=small_cfg())
        model, _ = build(CONFIG, **SMALL)
        model.load_state_dict(out['state_dict'], strict=True)
        _CACHE['small'] = (state, model.eval())
    return _CACHE['small']


# ---- conversion ---------------------------------------------------------------------------
def test_full_r50_key_set_loads_strictly():
    state = full_release()
    assert detect_format(state) == 'ks-detr'
    report = []
    out = convert_checkpoint(dict(model=state), cfg=CONFIG, report=report)
    assert out['meta']['release_source'] == 'ks-detr'
    assert out['meta']['release_architecture'] == 'KS-DN-Deformable-DETR'
    model, _ = build(CONFIG)
    model.load_state_dict(out['state_dict'], strict=True)
    rep, new = report[0], out['state_dict']
    teacher = {k for k in state if TEACHER.match(k) or k.startswith('ksgt.')}
    assert len(teacher) == 6 and set(rep.dropped) == teacher
    assert all('teacher' in why for why in rep.dropped.values())
    links = [k for k in state if k.startswith('transformer.decoder.bbox_embed.')]
    assert len(links) == 36 and rep.mapped == len(state) - len(teacher) - len(links)
    for ours, theirs in [('content_embedding.weight', 'tgt_embed.weight'),
                         ('query_embedding.weight', 'refpoint_embed.weight'),
                         ('decoder.query_scale.layers.1.weight',
                          'transformer.decoder.query_scale.layers.1.weight'),
                         ('decoder.ref_point_head.layers.0.weight',
                          'transformer.decoder.ref_point_head.layers.0.weight'),
                         ('dn_query_generator.label_embedding.weight',
                          'denoising_generator.label_encoder.weight'),
                         ('bbox_head.reg_branches.5.4.weight', 'bbox_embed.5.layers.2.weight'),
                         ('encoder.layers.5.self_attn.value_proj.weight',
                          'transformer.encoder.layers.5.attentions.0.value_proj.weight')]:
        assert torch.equal(new[ours], state[theirs]), ours
    assert not any(k.startswith('decoder.norm.') for k in model.state_dict())


def test_old_refusal_is_gone_and_wrong_inputs_are_one_line():
    state = full_release()
    convert_checkpoint(dict(model=state))  # recognised and mapped without a config too
    with open(DATA + 'ks_detr_ks-deformable-detr_r50.json') as f:
        ks_deformable = {k: torch.zeros(v) for k, v in json.load(f)['keys'].items()}
    with pytest.raises(ReleaseConversionError) as e:
        convert_checkpoint(dict(model=ks_deformable), cfg=CONFIG)
    assert 'found a ks-detr KS-Deformable-DETR checkpoint, but the config builds ' \
        'DN-Deformable-DETR' in _one_line(e)
    deformable_cfg = RELEASE_CONFIGS + 'ks-deformable-detr-release_r50_8xb2-12e_coco.py'
    with pytest.raises(ReleaseConversionError) as e:
        convert_checkpoint(dict(model=state), cfg=deformable_cfg)
    assert 'KS-DN-Deformable-DETR checkpoint, but the config builds Deformable-DETR' \
        in _one_line(e)
    # the library's own DN-Deformable-DETR ("no object" content queries, normed decoder)
    stock_cfg = osp.join(ROOT, 'configs/ks_detr/dn-deformable-detr_r50_8xb2-12e_coco.py')
    with pytest.raises(ReleaseConversionError) as e:
        convert_checkpoint(dict(model=state), cfg=stock_cfg)
    assert 'config builds DNDeformableDETR' in _one_line(e)
    missing = dict(state)
    del missing['transformer.decoder.query_scale.layers.1.bias']
    with pytest.raises(ReleaseConversionError) as e:
        convert_checkpoint(dict(model=missing), cfg=CONFIG)
    assert 'does not fill, e.g. "decoder.query_scale.layers.1.bias"' in _one_line(e)
    extra = dict(state, **{'transformer.decoder.extra.weight': torch.zeros(3)})
    with pytest.raises(ReleaseConversionError) as e:
        convert_checkpoint(dict(model=extra), cfg=CONFIG)
    assert 'no mmdet name for "transformer.decoder.extra.weight"' in _one_line(e)
    cfg = Config.fromfile(CONFIG)
    cfg.model.bbox_head.num_classes = 20
    with pytest.raises(ReleaseConversionError) as e:
        convert_checkpoint(dict(model=state), cfg=cfg)
    assert '80 classes' in _one_line(e) and 'num_classes=80' in str(e.value)


# ---- the shrunken model runs --------------------------------------------------------------
def test_shrunken_variant_predicts_runs_tensor_and_loss():
    _, model = converted_small_model()
    cls, box, res = run_predict_and_tensor(model)
    assert cls.shape == (2, 2, 16, 80) and box.shape == (2, 2, 16, 4) and len(res) == 2
    inst = res[0].pred_instances  # the release keeps the top 300 (query, class) scores
    assert inst.bboxes.shape == (300, 4) and (inst.scores[:-1] >= inst.scores[1:]).all()
    # training: denoising queries in front of the learnt content queries; DN losses
    samples = [DetDataSample(metainfo=dict(img_shape=(64, 96), batch_input_shape=(64, 96),
                                           ori_shape=(64, 96), scale_factor=(1.0, 1.0)))
               for _ in range(2)]
    samples[0].gt_instances = InstanceData(bboxes=torch.tensor([[4., 6., 40., 50.]]),
                                           labels=torch.tensor([3]))
    samples[1].gt_instances = InstanceData(bboxes=torch.zeros(0, 4),
                                           labels=torch.zeros(0, dtype=torch.long))
    torch.manual_seed(0)
    try:
        losses = model.train().loss(torch.randn(2, 3, 64, 96), samples)
    finally:
        model.eval()
    assert 'dn_loss_cls' in losses and 'd0.loss_bbox' in losses
    assert all(torch.isfinite(v).all() for v in losses.values())


# ---- the release's inference forward, re-derived ---------------------------------------------
def _linear(state, p, x):
    return F.linear(x, state[p + '.weight'], state[p + '.bias'])


def _mlp(state, p, x, n):
    """detrex MLP: n Linear layers ``p.layers.k``, ReLU between."""
    for k in range(n):
        x = _linear(state, f'{p}.layers.{k}', x)
        x = x.relu() if k < n - 1 else x
    return x


def _layer_norm(state, p, x):
    return F.layer_norm(x, x.shape[-1:], state[p + '.weight'], state[p + '.bias'])


def release_resnet(state, x):
    """detectron2 ResNet (BasicStem, bottlenecks with the stride in the 3x3 conv,
    FrozenBatchNorm eps 1e-5): res3, res4, res5."""
    def conv_bn(x, p, **kw):
        y = F.conv2d(x, state[p + '.weight'], **kw)
        scale = state[p + '.norm.weight'] * (state[p + '.norm.running_var'] + 1e-5).rsqrt()
        shift = state[p + '.norm.bias'] - state[p + '.norm.running_mean'] * scale
        return y * scale[:, None, None] + shift[:, None, None]
    x = F.max_pool2d(conv_bn(x, 'backbone.stem.conv1', stride=2, padding=3).relu(), 3, 2, 1)
    outs = []
    for stage in ('res2', 'res3', 'res4', 'res5'):
        blocks = len({k.split('.')[2] for k in state if k.startswith(f'backbone.{stage}.')})
        for i in range(blocks):
            p, stride = f'backbone.{stage}.{i}', 2 if i == 0 and stage != 'res2' else 1
            y = conv_bn(x, p + '.conv1').relu()
            y = conv_bn(y, p + '.conv2', stride=stride, padding=1).relu()
            y = conv_bn(y, p + '.conv3')
            x = (y + (conv_bn(x, p + '.shortcut', stride=stride) if i == 0 else x)).relu()
        outs.append(x)
    return outs[1:]


def release_msdeform_attn(state, p, query, value, padding, refs, shapes, heads=8, points=4):
    """detrex MultiScaleDeformableAttention (batch first) without the residual: sampled values
    at ``ref + offset`` (points: offset / level size; boxes: offset / points * wh / 2),
    bilinear (``grid_sample``, zeros outside), weighted by the softmax over levels x points."""
    bs, nq, dim = query.shape
    levels, d = len(shapes), dim // heads
    v = _linear(state, p + '.value_proj', value).masked_fill(padding[..., None], 0.0)
    v = v.view(bs, -1, heads, d)
    offsets = _linear(state, p + '.sampling_offsets', query)
    offsets = offsets.view(bs, nq, heads, levels, points, 2)
    weights = _linear(state, p + '.attention_weights', query).view(bs, nq, heads, -1)
    weights = weights.softmax(-1).view(bs, nq, heads, levels, points)
    if refs.shape[-1] == 2:
        size_xy = torch.stack([shapes[:, 1], shapes[:, 0]], -1).float()
        loc = refs[:, :, None, :, None] + offsets / size_xy[:, None]
    else:
        loc = refs[:, :, None, :, None, :2] + \
            offsets / points * refs[:, :, None, :, None, 2:] * 0.5
    out, start = 0, 0
    for lvl, (h, w) in enumerate(shapes.tolist()):
        v_l = v[:, start:start + h * w].permute(0, 2, 3, 1).reshape(bs * heads, d, h, w)
        grid = (2 * loc[:, :, :, lvl] - 1).transpose(1, 2).reshape(bs * heads, nq, points, 2)
        sampled = F.grid_sample(v_l, grid, mode='bilinear', padding_mode='zeros',
                                align_corners=False)  # (bs * heads, d, nq, points)
        a = weights[:, :, :, lvl].transpose(1, 2).reshape(bs * heads, 1, nq, points)
        out = out + (sampled * a).sum(-1)
        start += h * w
    out = out.view(bs, heads * d, nq).transpose(1, 2)
    return _linear(state, p + '.output_proj', out)


def release_self_attn(state, p, query, pos, heads=8):
    """detrex MultiheadAttention (batch first) without the residual: q = k = query + pos,
    v = query."""
    bs, n, dim = query.shape
    w, b = state[p + '.attn.in_proj_weight'], state[p + '.attn.in_proj_bias']
    q, k, v = [F.linear(x, wi, bi).view(bs, n, heads, -1).transpose(1, 2)
               for x, wi, bi in zip((query + pos, query + pos, query), w.chunk(3), b.chunk(3))]
    attn = (q @ k.transpose(-1, -2) / math.sqrt(dim // heads)).softmax(-1)
    return _linear(state, p + '.attn.out_proj', (attn @ v).transpose(1, 2).reshape(bs, n, dim))


def release_ffn(state, p, x):
    return x + _linear(state, p + '.layers.1', _linear(state, p + '.layers.0.0', x).relu())


def release_masks(images, image_sizes, feats, inference=True):
    """Padding masks, nearest-resized to every level. KSDNDeformableDETR at inference marks
    the last valid pixel row and column as padding too; in training (``inference=False``) only
    the padding."""
    bs, _, H, W = images.shape
    masks = images.new_ones(bs, H, W)
    for i, (h, w) in enumerate(image_sizes):
        masks[i, :h - int(inference), :w - int(inference)] = 0
    return [F.interpolate(masks[None], size=f.shape[-2:]).to(torch.bool)[0] for f in feats]


def release_forward(state, images, image_sizes, inference_masks=True):
    """KSDNDeformableDETR's inference forward (no denoising queries, student stream only; the
    teacher tensors are never read): per decoder layer logits (L, bs, Q, K) and boxes
    (L, bs, Q, 4), the outputs it evaluates (``eval_decoder_layer``: the last layer)."""
    feats = release_neck(state, release_resnet(state, images))
    masks = release_masks(images, image_sizes, feats, inference_masks)
    shapes = torch.tensor([f.shape[-2:] for f in feats])
    value = torch.cat([f.flatten(2).transpose(1, 2) for f in feats], 1)
    padding = torch.cat([m.flatten(1) for m in masks], 1)
    pos = torch.cat([(release_sine_position(m).flatten(2).transpose(1, 2) +
                      state['transformer.level_embeds'][lvl]) for lvl, m in enumerate(masks)], 1)
    ratios = torch.stack([torch.stack([(~m[:, 0, :]).sum(1) / m.shape[2],
                                       (~m[:, :, 0]).sum(1) / m.shape[1]], -1)
                          for m in masks], 1)  # (bs, levels, 2): (w, h)
    # encoder: every token's reference is its pixel centre, rescaled to each level's valid part
    centres = []
    for lvl, (h, w) in enumerate(shapes.tolist()):
        ys, xs = torch.meshgrid(torch.linspace(0.5, h - 0.5, h), torch.linspace(0.5, w - 0.5, w),
                                indexing='ij')
        centres.append(torch.stack([xs.reshape(-1)[None] / (ratios[:, None, lvl, 0] * w),
                                    ys.reshape(-1)[None] / (ratios[:, None, lvl, 1] * h)], -1))
    enc_refs = torch.cat(centres, 1)[:, :, None] * ratios[:, None]
    memory = value
    num_enc = 1 + max(int(k.split('.')[3]) for k in state if k.startswith('transformer.encoder.'))
    for i in range(num_enc):
        p = f'transformer.encoder.layers.{i}'
        memory = _layer_norm(state, p + '.norms.0', memory + release_msdeform_attn(
            state, p + '.attentions.0', memory + pos, memory, padding, enc_refs, shapes))
        memory = _layer_norm(state, p + '.norms.1', release_ffn(state, p + '.ffns.0', memory))
    # decoder: content queries + indicator 0, anchors; conditional scaling from layer 1 on
    bs = images.shape[0]
    tgt = state['tgt_embed.weight']
    query = torch.cat([tgt, tgt.new_zeros(len(tgt), 1)], 1)[None].repeat(bs, 1, 1)
    refs = state['refpoint_embed.weight'].sigmoid()[None].repeat(bs, 1, 1)
    all_cls, all_boxes = [], []
    for i in range(1 + max(int(k.split('.')[3]) for k in state
                           if k.startswith('transformer.decoder.layers.'))):
        p = f'transformer.decoder.layers.{i}'
        refs_in = refs[:, :, None] * torch.cat([ratios, ratios], -1)[:, None]
        query_pos = _mlp(state, 'transformer.decoder.ref_point_head',
                         release_sine_coords(refs_in[:, :, 0, :]), 2)
        if i > 0:
            query_pos = _mlp(state, 'transformer.decoder.query_scale', query, 2) * query_pos
        query = _layer_norm(state, p + '.norms.0',
                            query + release_self_attn(state, p + '.attentions.0', query,
                                                      query_pos))
        query = _layer_norm(state, p + '.norms.1', query + release_msdeform_attn(
            state, p + '.attentions.1', query + query_pos, memory, padding, refs_in, shapes))
        query = _layer_norm(state, p + '.norms.2', release_ffn(state, p + '.ffns.0', query))
        cls, boxes = release_head(state, i, query, refs)  # from the layer's input reference
        refs = (_mlp(state, f'transformer.decoder.bbox_embed.{i}', query, 3) +
                release_logit(refs)).sigmoid()
        all_cls.append(cls)
        all_boxes.append(boxes)
    return torch.stack(all_cls), torch.stack(all_boxes)


def test_release_masks_mark_nothing_on_unpadded_images():
    """Why the release's extra padding row / column does not matter on unpadded images: the
    nearest resize to the strided levels never reads the last pixel row or column."""
    images = torch.zeros(2, 3, 64, 96)
    feats = [torch.zeros(2, 1, h, w) for h, w in ((8, 12), (4, 6), (2, 3), (1, 2))]
    assert not any(m.any() for m in release_masks(images, [(64, 96)] * 2, feats))


def _samples(sizes, batch_shape=(64, 96)):
    return [DetDataSample(metainfo=dict(img_shape=s, batch_input_shape=batch_shape,
                                        ori_shape=s, scale_factor=(1.0, 1.0))) for s in sizes]


def test_tensor_outputs_are_the_releases():
    state, model = converted_small_model()
    images = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(5))
    samples = _samples([(64, 96)] * 2)
    with torch.no_grad():
        cls, boxes = model(images, samples, mode='tensor')
        want_cls, want_boxes = release_forward(state, images, [(64, 96)] * 2)
    assert cls.shape == want_cls.shape == (2, 2, 16, 80)
    assert boxes.shape == want_boxes.shape == (2, 2, 16, 4)
    assert want_cls.std() > 0.1 and want_boxes.std() > 0.05  # not degenerate
    diff = max((cls - want_cls).abs().max().item(), (boxes - want_boxes).abs().max().item())
    assert diff < 1e-4, f'max abs difference {diff:.2e}'
    # at the anchors within 1e-3 of 0 / 1, mmdet's head clamp (1e-5) gives other boxes: the
    # comparison above sees the release's clamp
    with torch.no_grad():
        head_in = model.forward_transformer(model.extract_feat(images), samples)
        _, stock = DeformableDETRHead.forward(model.bbox_head, head_in['hidden_states'],
                                              head_in['references'])
    assert (stock - want_boxes).abs().max() > 5e-4


def test_stock_and_release_configs_build_the_same_modules():
    """Only the content queries, the query scaling and the final norm differ from the
    library's DNDeformableDETR (besides the head / neck settings of the release)."""
    cfg = small_cfg()
    with torch.device('meta'):
        ours = MODELS.build(copy.deepcopy(cfg.model))
        cfg.model.type = 'DNDeformableDETR'
        stock = MODELS.build(copy.deepcopy(cfg.model))
    a, b = set(ours.state_dict()), set(stock.state_dict())
    assert a - b == {'content_embedding.weight', 'decoder.query_scale.layers.0.weight',
                     'decoder.query_scale.layers.0.bias', 'decoder.query_scale.layers.1.weight',
                     'decoder.query_scale.layers.1.bias'}
    assert b - a == {'decoder.norm.weight', 'decoder.norm.bias'}


def test_padded_batch_follows_the_release_masks():
    """A padded batch: padding masks, valid ratios and the positional encoding of the padded
    image are the release's, with the masks it uses in training (at inference it also marks
    the last valid pixel row / column, which this library does not)."""
    state, model = converted_small_model()
    images = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(6))
    sizes = [(64, 96), (40, 72)]
    images[1, :, 40:] = 0
    images[1, :, :, 72:] = 0
    with torch.no_grad():
        cls, boxes = model(images, _samples(sizes), mode='tensor')
        want_cls, want_boxes = release_forward(state, images, sizes, inference_masks=False)
    torch.testing.assert_close(cls, want_cls, rtol=0, atol=1e-4)
    torch.testing.assert_close(boxes, want_boxes, rtol=0, atol=1e-4)
