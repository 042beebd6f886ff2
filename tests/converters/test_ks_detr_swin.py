"""KS-DETR release KS-DAB-DETR Swin-T (format ``ks-detr``): the release's key set
(tests/data/releases/ks_detr_ks-dab-detr_swin-t.json, written from detectron2's Swin module by
make_ks_detr_swin_fixture.py) converts and loads strictly into
configs/ks_detr/release/ks-dab-detr-release_swin-t-p4-w7_8xb2-50e_coco.py; mmdet's
SwinTransformer on the converted tensors computes what the release's Swin computes on its own
tensors (a re-implementation of the release forward written here: patch embedding, shifted
window blocks, the (r0c0, r1c0, r0c1, r1c1) patch merging, output norm); a shrunken variant
predicts; the DAC-DETR converter maps the same Swin tensors to the same names and values;
mismatched backbones stop with one line."""
import math
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from converters.test_detrex_dab import build, release_state, run_predict_and_tensor, shrunken
from mmengine.config import Config

from mmdet_ksdetr.converters.release import (ReleaseConversionError, convert_checkpoint,
                                             detect_format)
from mmdet_ksdetr.converters.release.dac_detr import convert as convert_dac
from mmdet_ksdetr.converters.release.ks_detr import convert_ks_detr

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FIXTURE = osp.join(ROOT, 'tests/data/releases/ks_detr_ks-dab-detr_swin-t.json')
R50_FIXTURE = osp.join(ROOT, 'tests/data/releases/ks_detr_ks-dab-detr_r50.json')
CONFIG = osp.join(ROOT, 'configs/ks_detr/release/ks-dab-detr-release_swin-t-p4-w7_8xb2-50e_coco.py')
R50_CONFIG = osp.join(ROOT, 'configs/ks_detr/release/ks-dab-detr-release_r50_8xb2-50e_coco.py')
DEPTHS, HEADS, WINDOW = (2, 2, 6, 2), (3, 6, 12, 24), 7
IN_PROJ = 'transformer.encoder.layers.5.attentions.0.attn.in_proj_weight'


def _index(window):
    """The release's relative position index, token by token."""
    n = window * window
    out = torch.zeros(n, n, dtype=torch.long)
    for a in range(n):
        for b in range(n):
            dh = a // window - b // window + window - 1
            dw = a % window - b % window + window - 1
            out[a, b] = dh * (2 * window - 1) + dw
    return out


def _with_index(state):
    index = _index(WINDOW)
    for k in state:
        if k.endswith('relative_position_index'):
            state[k] = index.clone()
    return state


def _backbone_state(seed=0):
    """The release Swin-T tensors with values of a trained model's scale (LayerNorm weights
    near 1, so that every channel matters)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for k, v in release_state(FIXTURE).items():
        if not k.startswith('backbone.'):
            continue
        if k.endswith('relative_position_index'):
            state[k] = v
        elif 'norm' in k.split('.')[-2] and k.endswith('.weight'):
            state[k] = 1 + 0.2 * torch.randn(v.shape, generator=g)
        elif k.endswith('relative_position_bias_table'):
            state[k] = torch.randn(v.shape, generator=g)
        else:
            state[k] = torch.randn(v.shape, generator=g) * (0.1 if k.endswith('bias') else
                                                            1 / math.sqrt(v[0].numel()))
    return _with_index(state)


# ---------------------------------------------------------------- the release forward, anew
def _ln(x, w, name):
    return F.layer_norm(x, x.shape[-1:], w[name + '.weight'], w[name + '.bias'])


def _windows(x, ws):  # (B, Hp, Wp, C) -> (B * nW, ws * ws, C), windows row-major per image
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, c)


def _unwindows(x, b, h, w, ws):
    c = x.shape[-1]
    return x.view(b, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)


def _shift_mask(hp, wp, ws, shift):
    """-100 between tokens of one window that come from different regions of the rolled map."""
    label = torch.zeros(1, hp, wp, 1)
    cuts = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
    for n, (hs, wsl) in enumerate((hs, wsl) for hs in cuts for wsl in cuts):
        label[:, hs, wsl] = n
    lab = _windows(label, ws)[..., 0]  # (nW, N)
    return (lab[:, :, None] != lab[:, None, :]).float() * -100.0


def _block(x, h, w, w_, p, heads, ws, shift):
    b, _, c = x.shape
    y = _ln(x, w_, p + 'norm1').view(b, h, w, c)
    hp, wp = math.ceil(h / ws) * ws, math.ceil(w / ws) * ws
    y = F.pad(y, (0, 0, 0, wp - w, 0, hp - h))
    if shift:
        y = torch.roll(y, (-shift, -shift), (1, 2))
    win = _windows(y, ws)
    n = ws * ws
    qkv = F.linear(win, w_[p + 'attn.qkv.weight'], w_[p + 'attn.qkv.bias'])
    q, k, v = qkv.view(-1, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
    attn = (q * (c // heads) ** -0.5) @ k.transpose(-2, -1)
    table = w_[p + 'attn.relative_position_bias_table']
    attn = attn + table[w_[p + 'attn.relative_position_index'].view(-1)].view(n, n, heads) \
        .permute(2, 0, 1)[None]
    if shift:
        mask = _shift_mask(hp, wp, ws, shift)
        attn = (attn.view(b, -1, heads, n, n) + mask[None, :, None]).view(-1, heads, n, n)
    out = (attn.softmax(-1) @ v).transpose(1, 2).reshape(-1, n, c)
    out = F.linear(out, w_[p + 'attn.proj.weight'], w_[p + 'attn.proj.bias'])
    out = _unwindows(out, b, hp, wp, ws)
    if shift:
        out = torch.roll(out, (shift, shift), (1, 2))
    x = x + out[:, :h, :w].reshape(b, h * w, c)
    hidden = F.gelu(F.linear(_ln(x, w_, p + 'norm2'), w_[p + 'mlp.fc1.weight'],
                             w_[p + 'mlp.fc1.bias']))
    return x + F.linear(hidden, w_[p + 'mlp.fc2.weight'], w_[p + 'mlp.fc2.bias'])


def _release_swin(w_, img, pre='backbone.'):
    """detectron2's SwinTransformer(out_indices=(3,)) on release-named tensors, written anew."""
    x = F.pad(img, (0, -img.shape[-1] % 4, 0, -img.shape[-2] % 4))
    x = F.conv2d(x, w_[pre + 'patch_embed.proj.weight'], w_[pre + 'patch_embed.proj.bias'],
                 stride=4)
    b, _, h, w = x.shape
    x = _ln(x.flatten(2).transpose(1, 2), w_, pre + 'patch_embed.norm')
    for i, depth in enumerate(DEPTHS):
        for j in range(depth):
            x = _block(x, h, w, w_, f'{pre}layers.{i}.blocks.{j}.', HEADS[i], WINDOW,
                       WINDOW // 2 if j % 2 else 0)
        if i == len(DEPTHS) - 1:
            break
        grid = F.pad(x.view(b, h, w, -1), (0, 0, 0, w % 2, 0, h % 2))
        grid = torch.cat([grid[:, 0::2, 0::2], grid[:, 1::2, 0::2], grid[:, 0::2, 1::2],
                          grid[:, 1::2, 1::2]], -1)
        h, w = grid.shape[1:3]
        x = _ln(grid.reshape(b, h * w, -1), w_, f'{pre}layers.{i}.downsample.norm')
        x = x @ w_[f'{pre}layers.{i}.downsample.reduction.weight'].t()
    x = _ln(x, w_, pre + 'norm3')
    return x.view(b, h, w, -1).permute(0, 3, 1, 2)


def _mmdet_swin():
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    swin = MODELS.build(Config.fromfile(CONFIG).model.backbone)
    swin.eval()  # (its train() returns None)
    return swin


# ---------------------------------------------------------------- tests
def test_full_key_set_converts_and_loads_strictly():
    state = _with_index(release_state(FIXTURE))
    assert detect_format(state) == 'ks-detr'
    report = []
    out = convert_checkpoint(dict(model=state), cfg=CONFIG, report=report)
    assert out['meta']['release_architecture'] == 'KS-DAB-DETR'
    model, _ = build(CONFIG)
    model.load_state_dict(out['state_dict'], strict=True)
    new, rep = out['state_dict'], report[0]
    assert torch.equal(new['backbone.patch_embed.projection.weight'],
                       state['backbone.patch_embed.proj.weight'])
    assert torch.equal(new['backbone.stages.2.blocks.5.attn.w_msa.qkv.weight'],
                       state['backbone.layers.2.blocks.5.attn.qkv.weight'])
    assert torch.equal(new['backbone.stages.3.blocks.1.ffn.layers.1.bias'],
                       state['backbone.layers.3.blocks.1.mlp.fc2.bias'])
    assert torch.equal(new['backbone.norm3.weight'], state['backbone.norm3.weight'])
    red = state['backbone.layers.1.downsample.reduction.weight']  # (384, 4 x 192)
    assert torch.equal(new['backbone.stages.1.downsample.reduction.weight'][:, 1],
                       red[:, 2 * 192])  # unfold: channel 0, r0c1 <- the release's 3rd block
    assert torch.equal(new['neck.convs.0.conv.weight'], state['input_proj.weight'])
    assert torch.equal(new['encoder.layers.5.self_attn.attn.in_proj_weight'],
                       state[IN_PROJ][:768])
    twins_or_teacher = ('ksgt.', IN_PROJ[:-len('weight')], 'transformer.decoder.bbox_embed.')
    assert all(k.startswith(twins_or_teacher) or k.endswith('ffns.0.activation.weight')
               for k in rep.dropped)
    assert not any(k.startswith('backbone.') for k in rep.dropped)


def test_backbone_computes_the_release_swin():
    """mmdet's SwinTransformer on the converted tensors == the release forward on the release
    tensors (input 100 x 132: every padding path, shifted windows smaller than the map); the
    raw patch-merging tensors (no reorder) give a clearly different result."""
    from mmdet_ksdetr.converters.release.swin import convert_swin
    rel = _backbone_state()
    conv, _ = convert_swin(rel, 'backbone.', '')
    swin = _mmdet_swin()
    ours = swin.stages[0].blocks[0].attn.w_msa.relative_position_index
    assert torch.equal(ours, _index(WINDOW))  # the same constant on both sides
    swin.load_state_dict(conv, strict=True)
    img = torch.randn(1, 3, 100, 132, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        want = _release_swin(rel, img)
        got, = swin(img)
    assert got.shape == want.shape == (1, 768, 4, 5)
    diff = (got - want).abs().max().item()
    print(f'max |mmdet - release| = {diff:.3e} (output scale {want.abs().max().item():.2f})')
    assert diff < 1e-4
    raw = dict(conv)
    for k in raw:
        if '.downsample.' in k:
            raw[k] = rel['backbone.' + k.replace('stages.', 'layers.')]
    swin.load_state_dict(raw, strict=True)
    with torch.no_grad():
        wrong, = swin(img)
    assert (wrong - want).abs().max() > 1e-1


def test_shrunken_variant_predicts():
    state = release_state(FIXTURE, layers=2, queries=16)
    state = {k: v for k, v in state.items() if not k.startswith(
        tuple(f'backbone.layers.2.blocks.{j}.' for j in range(2, 6)))}
    state = _with_index(state)
    state['transformer.encoder.layers.1.attentions.0.attn.in_proj_weight'] = \
        torch.randn(1536, 256, generator=torch.Generator().manual_seed(1)) * 0.05
    state['transformer.encoder.layers.1.attentions.0.attn.in_proj_bias'] = torch.zeros(1536)
    overrides = shrunken()
    overrides['model.backbone.depths'] = [2, 2, 2, 2]
    model, cfg = build(CONFIG, **overrides)
    new, _ = convert_ks_detr(state, cfg)
    model.load_state_dict(new, strict=True)
    cls, box, res = run_predict_and_tensor(model)
    assert cls.shape == (2, 2, 16, 80) and box.shape == (2, 2, 16, 4) and len(res) == 2


def test_dac_detr_maps_the_same_swin_tensors():
    """The DAC-DETR converter (backbone under ``backbone.0.body.``) and the KS-DETR one use the
    one Swin mapping: the same mmdet names and values, mmdet's full Swin-T key set."""
    from mmdet_ksdetr.converters.release.swin import convert_swin
    rel = _backbone_state(seed=2)
    ks, _ = convert_swin(rel)
    dac_state = {'backbone.0.body.' + k[len('backbone.'):]: v for k, v in rel.items()}
    dac_state.update({
        'label_enc.weight': torch.zeros(92, 4), 'query_embed.weight': torch.zeros(9, 4),
        'transformer.pos_trans.weight': torch.zeros(8, 8),
        'transformer.enc_output.weight': torch.zeros(4, 4),
        'class_embed.0.weight': torch.zeros(91, 4),
        'transformer.decoder.layers.0.cross_attn.sampling_offsets.weight': torch.zeros(4, 4)})
    dac, _ = convert_dac(dac_state)
    dac = {k: v for k, v in dac.items() if k.startswith('backbone.')}
    assert dac.keys() == ks.keys()
    assert all(torch.equal(dac[k], ks[k]) for k in ks)
    expected = {'backbone.' + k for k in _mmdet_swin().state_dict()}
    assert set(ks) == expected


def _one_line(match, state, cfg):
    with pytest.raises(ReleaseConversionError, match=match) as e:
        convert_ks_detr(state, cfg)
    assert '\n' not in str(e.value)


def test_mismatched_backbones_are_one_line():
    swin_state = _with_index(release_state(FIXTURE, layers=1, queries=4))
    r50_cfg = Config.fromfile(R50_CONFIG)
    r50_cfg.model.encoder.num_layers = r50_cfg.model.decoder.num_layers = 1
    _one_line('has a SwinTransformer backbone, the config\'s backbone is ResNet', swin_state,
              r50_cfg)
    cfg = Config.fromfile(CONFIG)
    cfg.model.encoder.num_layers = cfg.model.decoder.num_layers = 1
    _one_line('has a ResNet backbone, the config\'s backbone is SwinTransformer',
              release_state(R50_FIXTURE, layers=1, queries=4), cfg)
    cfg.model.backbone.depths = [2, 2, 18, 2]
    _one_line(r'depths=\(2, 2, 6, 2\), the config\'s backbone has depths=\(2, 2, 18, 2\)',
              swin_state, cfg)
    cfg.model.backbone.depths = [2, 2, 6, 2]
    cfg.model.neck.in_channels = [2048]
    _one_line(r'projects 768 backbone channels .*in_channels is \[2048\]', swin_state, cfg)
    damaged = dict(swin_state)
    damaged['backbone.layers.0.blocks.1.attn.relative_position_index'] = \
        torch.zeros(49, 49, dtype=torch.long)
    _one_line('layers.0.blocks.1.attn.relative_position_index', damaged, None)
