"""Writes ``detr_distill_r101_teacher_keys.json``: the state-dict keys, shapes and dtypes of
the DETRDistill release teacher (``cfg_distill/deformable_detr/
deformable_detr_r101_16x2_50e_coco_teacher.py``) as mmdet 2.x / mmcv 1.x build it.

``backbone.*`` / ``neck.*``: mmdet's ``ResNet`` and ``ChannelMapper`` have the same parameter
names in 2.x and 3.x, so they are listed from the installed classes. The head is written out
from the 2.x module structure (``DeformableDETRHead`` -> ``DeformableDetrTransformer`` ->
``BaseTransformerLayer`` with ``attentions`` / ``ffns`` / ``norms`` lists), not from the
converter. ``tied`` lists the keys mmdet 2.x saves from one module (the classifier and the
box regressor shared by every decoder layer without box refinement).

    python tests/data/releases/make_detr_distill_fixture.py
"""
import json
import os.path as osp

from mmdet.models.backbones import ResNet
from mmdet.models.necks import ChannelMapper

E, FF, Q, C, LEVELS, HEADS, POINTS, LAYERS = 256, 1024, 300, 80, 4, 8, 4, 6
OPERATION_ORDER = dict(encoder=['self_attn', 'norm', 'ffn', 'norm'],
                       decoder=['self_attn', 'norm', 'cross_attn', 'norm', 'ffn', 'norm'])


def linear(prefix, n_out, n_in):
    return {f'{prefix}.weight': [n_out, n_in], f'{prefix}.bias': [n_out]}


def msda(prefix):  # mmcv MultiScaleDeformableAttention
    out = {}
    out.update(linear(f'{prefix}.sampling_offsets', HEADS * LEVELS * POINTS * 2, E))
    out.update(linear(f'{prefix}.attention_weights', HEADS * LEVELS * POINTS, E))
    out.update(linear(f'{prefix}.value_proj', E, E))
    out.update(linear(f'{prefix}.output_proj', E, E))
    return out


def layer(prefix, order):  # mmcv 1.x BaseTransformerLayer
    out, n_attn, n_norm = {}, 0, 0
    for op in order:
        if op == 'norm':
            out.update({f'{prefix}.norms.{n_norm}.weight': [E], f'{prefix}.norms.{n_norm}.bias': [E]})
            n_norm += 1
        elif op == 'ffn':  # FFN: layers = Sequential(Sequential(Linear, ReLU, Dropout), Linear, Dropout)
            out.update(linear(f'{prefix}.ffns.0.layers.0.0', FF, E))
            out.update(linear(f'{prefix}.ffns.0.layers.1', E, FF))
        elif op == 'cross_attn' or prefix.startswith('bbox_head.transformer.encoder'):
            out.update(msda(f'{prefix}.attentions.{n_attn}'))
            n_attn += 1
        else:  # mmcv MultiheadAttention wraps nn.MultiheadAttention as .attn
            a = f'{prefix}.attentions.{n_attn}.attn'
            out.update({f'{a}.in_proj_weight': [3 * E, E], f'{a}.in_proj_bias': [3 * E]})
            out.update(linear(f'{a}.out_proj', E, E))
            n_attn += 1
    return out


def main():
    keys = {}
    for prefix, module in (('backbone', ResNet(depth=101, out_indices=(1, 2, 3), frozen_stages=1)),
                           ('neck', ChannelMapper([512, 1024, 2048], 256, kernel_size=1,
                                                  act_cfg=None, norm_cfg=dict(type='GN', num_groups=32),
                                                  num_outs=4))):
        for k, v in module.state_dict().items():
            keys[f'{prefix}.{k}'] = [list(v.shape), str(v.dtype).replace('torch.', '')]
    head = {}
    for i in range(LAYERS):
        head.update(layer(f'bbox_head.transformer.encoder.layers.{i}', OPERATION_ORDER['encoder']))
    for i in range(LAYERS):
        head.update(layer(f'bbox_head.transformer.decoder.layers.{i}', OPERATION_ORDER['decoder']))
    head['bbox_head.transformer.level_embeds'] = [LEVELS, E]
    head.update(linear('bbox_head.transformer.reference_points', 2, E))
    tied = [[], [], [], [], [], [], [], []]
    for j in range(LAYERS):
        names = list(linear(f'bbox_head.cls_branches.{j}', C, E))
        for m, (n_out, n_in) in zip((0, 2, 4), ((E, E), (E, E), (4, E))):
            names += list(linear(f'bbox_head.reg_branches.{j}.{m}', n_out, n_in))
            head.update(linear(f'bbox_head.reg_branches.{j}.{m}', n_out, n_in))
        head.update(linear(f'bbox_head.cls_branches.{j}', C, E))
        for t, name in zip(tied, names):
            t.append(name)
    head['bbox_head.query_embedding.weight'] = [Q, 2 * E]
    keys.update({k: [shape, 'float32'] for k, shape in head.items()})
    out = dict(source='BIVLab-USTC/DETRDistill deformable_detr_r101_16x2_50e_coco_teacher.py '
                      '(mmdet 2.x, mmcv 1.4)',
               operation_order=OPERATION_ORDER, keys=keys, tied=tied)
    path = osp.join(osp.dirname(osp.abspath(__file__)), 'detr_distill_r101_teacher_keys.json')
    with open(path, 'w') as f:
        json.dump(out, f, indent=0)
    print(path, len(keys), 'keys')


if __name__ == '__main__':
    main()
