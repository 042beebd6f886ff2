"""Writes ``ks_detr_ks-dab-detr_swin-t.json``: the state-dict keys and shapes of the KS-DETR
release KS-DAB-DETR Swin-T (``projects/ks_detr/configs/ks_dab_detr/
ks_dab_detr_swin_tiny_50ep_smlp_qkv_triple_attn_share_outproj_ffn.py``).

That config is the R50 KS-DAB-DETR model (``models/ks_dab_detr_swin_tiny_smlp_qkv_triple_attn_
outproj_ffn_v0.py`` imports ``ks_dab_detr_r50_smlp_qkv_triple_attn_outproj_ffn_v0``) with
``model.backbone = detectron2 SwinTransformer(embed_dim=96, depths=(2, 2, 6, 2),
num_heads=(3, 6, 12, 24), drop_path_rate=0.1, out_indices=(3,))`` (window 7, mlp_ratio 4,
qkv_bias, patch_norm, no absolute position embedding: the defaults) and
``model.in_channels = 768``. So: every non-backbone key of the R50 fixture
(``ks_detr_ks-dab-detr_r50.json``), ``input_proj.weight`` taking 768 channels, and the Swin-T
tensors written out here from the structure of detectron2's ``modeling/backbone/swin.py``
(``PatchEmbed`` -> ``layers[i]`` = ``BasicLayer`` of ``SwinTransformerBlock`` s with
``norm1``, ``attn`` = ``WindowAttention`` (``relative_position_bias_table``, the
``relative_position_index`` buffer, ``qkv``, ``proj``), ``norm2``, ``mlp`` (``fc1``, ``fc2``),
then ``downsample`` = ``PatchMerging`` (``reduction`` without bias, ``norm`` of 4C) in every
stage but the last; one LayerNorm ``norm<i>`` per output stage), not from the converter.

    python tests/data/releases/make_ks_detr_swin_fixture.py
"""
import json
import os.path as osp

HERE = osp.dirname(osp.abspath(__file__))
EMBED, DEPTHS, HEADS, WINDOW, MLP_RATIO, OUT_INDICES = 96, (2, 2, 6, 2), (3, 6, 12, 24), 7, 4, (3, )


def norm(prefix, dim):
    return {f'{prefix}.weight': [dim], f'{prefix}.bias': [dim]}


def linear(prefix, n_out, n_in, bias=True):
    out = {f'{prefix}.weight': [n_out, n_in]}
    if bias:
        out[f'{prefix}.bias'] = [n_out]
    return out


def swin(prefix='backbone.'):
    keys = {f'{prefix}patch_embed.proj.weight': [EMBED, 3, 4, 4],
            f'{prefix}patch_embed.proj.bias': [EMBED]}
    keys.update(norm(f'{prefix}patch_embed.norm', EMBED))
    for i, (depth, heads) in enumerate(zip(DEPTHS, HEADS)):
        dim = EMBED * 2**i
        for j in range(depth):
            b = f'{prefix}layers.{i}.blocks.{j}'
            keys.update(norm(f'{b}.norm1', dim))
            keys[f'{b}.attn.relative_position_bias_table'] = [(2 * WINDOW - 1)**2, heads]
            keys[f'{b}.attn.relative_position_index'] = [WINDOW**2, WINDOW**2]
            keys.update(linear(f'{b}.attn.qkv', 3 * dim, dim))
            keys.update(linear(f'{b}.attn.proj', dim, dim))
            keys.update(norm(f'{b}.norm2', dim))
            keys.update(linear(f'{b}.mlp.fc1', MLP_RATIO * dim, dim))
            keys.update(linear(f'{b}.mlp.fc2', dim, MLP_RATIO * dim))
        if i < len(DEPTHS) - 1:
            keys.update(linear(f'{prefix}layers.{i}.downsample.reduction', 2 * dim, 4 * dim,
                               bias=False))
            keys.update(norm(f'{prefix}layers.{i}.downsample.norm', 4 * dim))
    for i in OUT_INDICES:
        keys.update(norm(f'{prefix}norm{i}', EMBED * 2**i))
    return keys


def main():
    with open(osp.join(HERE, 'ks_detr_ks-dab-detr_r50.json')) as f:
        r50 = json.load(f)['keys']
    keys = {k: v for k, v in r50.items() if not k.startswith('backbone.')}
    keys['input_proj.weight'] = [keys['input_proj.weight'][0], EMBED * 2**3, 1, 1]
    keys.update(swin())
    out = dict(release='edocanonymous/KS-DETR projects/ks_detr ks_dab_detr_swin_tiny_50ep_smlp_'
                       'qkv_triple_attn_share_outproj_ffn (the R50 fixture\'s KSDABDETR keys, '
                       'input_proj from 768 channels; backbone: detectron2 SwinTransformer '
                       'Swin-T names, written by make_ks_detr_swin_fixture.py)',
               keys=dict(sorted(keys.items())))
    lines = [f'{json.dumps(k)}: {json.dumps(v)}' for k, v in out['keys'].items()]
    with open(osp.join(HERE, 'ks_detr_ks-dab-detr_swin-t.json'), 'w') as f:
        f.write('{\n"release": ' + json.dumps(out['release']) + ',\n"keys": {\n' +
                ',\n'.join(lines) + '\n}\n}\n')


if __name__ == '__main__':
    main()
