"""``detr-distill``: the DETRDistill release (BIVLab-USTC/DETRDistill, built on mmdet 2.x) ->
mmdet 3.x ``DeformableDETR``.

The release's teacher (R-101) and students (R-50, R-18) are mmdet 2.x Deformable DETR
checkpoints; the same key names hold for any mmdet 2.x Deformable DETR (box refinement and
two-stage included). mmdet 2.x kept the transformer inside the head; mmdet 3.x moved it into
the detector and renamed its layers' module lists after their role::

    bbox_head.transformer.encoder.layers.i.attentions.0  -> encoder.layers.i.self_attn
    bbox_head.transformer.encoder.layers.i.ffns.0        -> encoder.layers.i.ffn
    bbox_head.transformer.decoder.layers.i.attentions.0  -> decoder.layers.i.self_attn
    bbox_head.transformer.decoder.layers.i.attentions.1  -> decoder.layers.i.cross_attn
    bbox_head.transformer.{en,de}coder.layers.i.norms.k  -> {en,de}coder.layers.i.norms.k
    bbox_head.transformer.level_embeds                   -> level_embed
    bbox_head.transformer.reference_points               -> reference_points_fc
    bbox_head.transformer.enc_output / enc_output_norm   -> memory_trans_fc / memory_trans_norm
    bbox_head.transformer.pos_trans / pos_trans_norm     -> pos_trans_fc / pos_trans_norm
    bbox_head.query_embedding                            -> query_embedding

``backbone.*``, ``neck.*``, ``bbox_head.cls_branches.*`` and ``bbox_head.reg_branches.*`` keep
their names. Both versions use the operation order self-attention, norm, (cross-attention,
norm,) FFN, norm, so ``norms.k`` keeps its index; the decoder self-attention is
``nn.MultiheadAttention`` in both (the packed ``in_proj_weight`` moves as it is). Every tensor
is renamed, never copied. A checkpoint of the release's distiller (``student.*`` /
``teacher.*``) gives its student; the teacher and the distillation modules are dropped.
"""
import re
from typing import Dict, Optional, Tuple

import torch

from mmdet_ksdetr.converters.release.api import (ConversionReport, ReleaseConversionError,
                                                 ReleaseFormat, register_format)

__all__ = ['convert_detr_distill', 'detect_detr_distill', 'DETR_DISTILL_FORMAT']

_T = 'bbox_head.transformer.'
_ENC_PROBE = _T + 'encoder.layers.0.attentions.0.sampling_offsets.weight'

_LAYER = re.compile(r'^bbox_head\.transformer\.(encoder|decoder)\.layers\.(\d+)\.'
                    r'(attentions|ffns|norms)\.(\d+)\.(.+)$')
_ROLE = {('encoder', 'attentions', 0): 'self_attn', ('decoder', 'attentions', 0): 'self_attn',
         ('decoder', 'attentions', 1): 'cross_attn'}
_TRANSFORMER = {'level_embeds': 'level_embed', 'reference_points.': 'reference_points_fc.',
                'enc_output_norm.': 'memory_trans_norm.', 'enc_output.': 'memory_trans_fc.',
                'pos_trans_norm.': 'pos_trans_norm.', 'pos_trans.': 'pos_trans_fc.'}
# per layer: 3.x module -> its tensors (as MultiScaleDeformableAttention, MultiheadAttention,
# FFN and LayerNorm name them)
_MSDA = [f'{m}.{p}' for m in ('sampling_offsets', 'attention_weights', 'value_proj',
                              'output_proj') for p in ('weight', 'bias')]
_MHA = ['attn.in_proj_weight', 'attn.in_proj_bias', 'attn.out_proj.weight', 'attn.out_proj.bias']
_FFN = ['layers.0.0.weight', 'layers.0.0.bias', 'layers.1.weight', 'layers.1.bias']
_NORM = ['weight', 'bias']
_DISTILLER_PARTS = {
    'teacher.': 'the teacher of the distillation run (load the teacher release on its own)',
    'distill_losses.': 'distillation-loss modules (contrastive head, FGD), training only',
}
# ResNet depth from (blocks in layer3, bottleneck?)
_RESNET_DEPTH = {(2, False): 18, (6, False): 34, (6, True): 50, (23, True): 101, (36, True): 152}


def detect_detr_distill(state: Dict[str, torch.Tensor]) -> bool:
    """An mmdet 2.x Deformable DETR state dict (as the release saves it), or the release's
    distiller checkpoint (``student.`` prefix)."""
    return _ENC_PROBE in state or ('student.' + _ENC_PROBE) in state


def _new_name(key: str) -> Optional[str]:
    """The mmdet 3.x name of an mmdet 2.x Deformable DETR key, or None (not a model key)."""
    if key.startswith(('backbone.', 'neck.', 'bbox_head.cls_branches.',
                       'bbox_head.reg_branches.')):
        return key
    if key == 'bbox_head.query_embedding.weight':
        return 'query_embedding.weight'
    m = _LAYER.match(key)
    if m:
        part, i, kind, k, rest = m.groups()
        if kind == 'norms':
            return f'{part}.layers.{i}.norms.{k}.{rest}'
        if kind == 'ffns':
            return f'{part}.layers.{i}.ffn.{rest}' if k == '0' else None
        role = _ROLE.get((part, kind, int(k)))
        return f'{part}.layers.{i}.{role}.{rest}' if role else None
    if key.startswith(_T):
        rest = key[len(_T):]
        for old, new in _TRANSFORMER.items():
            if rest.startswith(old):
                return new + rest[len(old):]
    return None


def _student_of_distiller(state, dropped):
    """The ``student.*`` part of a distiller checkpoint, everything else recorded in
    ``dropped`` with the reason."""
    student = {}
    for key, value in state.items():
        if key.startswith('student.'):
            student[key[len('student.'):]] = value
            continue
        why = next((w for p, w in _DISTILLER_PARTS.items() if key.startswith(p)),
                   'a feature-map buffer of the release distiller (training only)')
        dropped[key] = why
    return student


def _count_layers(state, part):
    found = {int(m.group(2)) for m in map(_LAYER.match, state) if m and m.group(1) == part}
    return max(found) + 1 if found else 0


def _resnet_depth(state) -> Optional[int]:
    blocks = {int(m.group(1)) for m in (re.match(r'^backbone\.layer3\.(\d+)\.', k)
                                        for k in state) if m}
    if not blocks:
        return None
    bottleneck = 'backbone.layer1.0.conv3.weight' in state
    return _RESNET_DEPTH.get((max(blocks) + 1, bottleneck))


def _model_cfg(cfg):
    """The model part of ``cfg`` (a whole config or a model dict) as a plain dict, or None."""
    if cfg is None:
        return None
    model = cfg.get('model', cfg) if hasattr(cfg, 'get') else None
    if not hasattr(model, 'get'):
        raise ReleaseConversionError(f'config: expected a config with a "model" dict, found a '
                                     f'{type(cfg).__name__}')
    if model.get('architecture') is not None:
        raise ReleaseConversionError(
            'config is a distillation config: give the detector config the weights go into '
            '(its teacher or its student), not the distiller')
    return model


def _check_against_cfg(model, arch, n_enc, n_dec, two_stage, refine, num_classes,
                       num_queries, depth):
    """Stop (one line) where the release and the config build different detectors."""
    mtype = str(model.get('type', '')).split('.')[-1]
    if mtype != 'DeformableDETR':
        raise ReleaseConversionError(
            f'the checkpoint is a {arch} (mmdet 2.x DETRDistill release) but the config builds '
            f'a {mtype or "model without type"}: use a DeformableDETR config (e.g. '
            f'configs/detectors/deformable-detr_r101_16xb2-50e_coco.py for the R-101 teacher)')
    want = dict(as_two_stage=two_stage, with_box_refine=refine)
    for name, value in want.items():
        if bool(model.get(name, False)) != value:
            raise ReleaseConversionError(
                f'the checkpoint is a {arch} ({name}={value}) but the config sets '
                f'{name}={bool(model.get(name, False))}: set model.{name}={value}')
    head_classes = (model.get('bbox_head') or {}).get('num_classes')
    if head_classes is not None and head_classes != num_classes:
        raise ReleaseConversionError(
            f'the checkpoint predicts {num_classes} classes but the config has '
            f'bbox_head.num_classes={head_classes}: use a config with {num_classes} classes')
    for part, n in (('encoder', n_enc), ('decoder', n_dec)):
        layers = (model.get(part) or {}).get('num_layers')
        if layers is not None and layers != n:
            raise ReleaseConversionError(f'the checkpoint has {n} {part} layers but the config '
                                         f'sets {part}.num_layers={layers}')
    queries = model.get('num_queries')
    if num_queries is not None and queries is not None and queries != num_queries:
        raise ReleaseConversionError(f'the checkpoint has {num_queries} queries but the config '
                                     f'sets num_queries={queries}')
    backbone = model.get('backbone') or {}
    if depth is not None and backbone.get('depth') not in (None, depth):
        raise ReleaseConversionError(
            f'the checkpoint has a ResNet-{depth} backbone but the config a ResNet-'
            f'{backbone.get("depth")}: use the config of the ResNet-{depth} model')


def _expected_keys(n_enc, n_dec, num_pred, two_stage):
    """The mmdet 3.x keys outside backbone / neck that this detector has."""
    keys = ['level_embed']
    for i in range(n_enc):
        keys += [f'encoder.layers.{i}.self_attn.{s}' for s in _MSDA]
        keys += [f'encoder.layers.{i}.ffn.{s}' for s in _FFN]
        keys += [f'encoder.layers.{i}.norms.{k}.{s}' for k in range(2) for s in _NORM]
    for i in range(n_dec):
        keys += [f'decoder.layers.{i}.self_attn.{s}' for s in _MHA]
        keys += [f'decoder.layers.{i}.cross_attn.{s}' for s in _MSDA]
        keys += [f'decoder.layers.{i}.ffn.{s}' for s in _FFN]
        keys += [f'decoder.layers.{i}.norms.{k}.{s}' for k in range(3) for s in _NORM]
    for j in range(num_pred):
        keys += [f'bbox_head.cls_branches.{j}.{s}' for s in _NORM]
        keys += [f'bbox_head.reg_branches.{j}.{m}.{s}' for m in (0, 2, 4) for s in _NORM]
    if two_stage:
        keys += [f'{m}.{s}' for m in ('memory_trans_fc', 'memory_trans_norm', 'pos_trans_fc',
                                      'pos_trans_norm') for s in _NORM]
    else:
        keys += ['query_embedding.weight', 'reference_points_fc.weight',
                 'reference_points_fc.bias']
    return keys


def _branches_shared(state, num_pred) -> bool:
    """mmdet 2.x without box refinement repeats one classifier / regressor per decoder layer
    (equal tensors); with box refinement each layer has its own."""
    first = state['bbox_head.cls_branches.0.weight']
    return all(torch.equal(first, state[f'bbox_head.cls_branches.{j}.weight'])
               for j in range(1, num_pred) if f'bbox_head.cls_branches.{j}.weight' in state)


def _listing(keys, n=3):
    keys = sorted(keys)
    return ', '.join(keys[:n]) + (f', ... ({len(keys)} in all)' if len(keys) > n else '')


def convert_detr_distill(state: Dict[str, torch.Tensor], cfg=None
                         ) -> Tuple[Dict[str, torch.Tensor], ConversionReport]:
    """mmdet 2.x Deformable DETR (DETRDistill release) -> mmdet 3.x ``DeformableDETR``.

    Args:
        state (dict[str, Tensor]): the release state dict.
        cfg: the config (or model dict) of the target detector; when given, the architecture
            (type, box refinement, two-stage, layers, queries, classes, ResNet depth) must
            match the checkpoint's.

    Returns:
        tuple: the mmdet 3.x state dict (the same tensors, renamed) and the report.
    """
    dropped: Dict[str, str] = {}
    if any(k.startswith('student.') for k in state):
        state = _student_of_distiller(state, dropped)
    new_state, unmapped = {}, []
    for key, value in state.items():
        new = _new_name(key)
        if new is None:
            unmapped.append(key)
        else:
            new_state[new] = value
    if unmapped:
        raise ReleaseConversionError(f'detr-distill: {len(unmapped)} release keys have no '
                                     f'mmdet 3.x counterpart: {_listing(unmapped)}')
    if 'bbox_head.cls_branches.0.weight' not in new_state:
        raise ReleaseConversionError('detr-distill: the checkpoint has no '
                                     'bbox_head.cls_branches.0.weight (truncated state dict?)')
    n_enc, n_dec = _count_layers(state, 'encoder'), _count_layers(state, 'decoder')
    two_stage = 'memory_trans_fc.weight' in new_state
    num_pred = n_dec + 1 if two_stage else n_dec
    refine = not _branches_shared(new_state, num_pred)
    num_classes = new_state['bbox_head.cls_branches.0.weight'].shape[0]
    query = new_state.get('query_embedding.weight')
    depth = _resnet_depth(new_state)
    arch = ('Deformable DETR' + (f' R-{depth}' if depth else '') +
            (' box-refine' if refine else '') + (' two-stage' if two_stage else ''))
    model = _model_cfg(cfg)
    if model is not None:
        _check_against_cfg(model, arch, n_enc, n_dec, two_stage, refine, num_classes,
                           None if query is None else query.shape[0], depth)
    expected = _expected_keys(n_enc, n_dec, num_pred, two_stage)
    missing = [k for k in expected if k not in new_state]
    extra = [k for k in new_state if not k.startswith(('backbone.', 'neck.'))
             and k not in set(expected)]
    if missing or extra:
        what = '; '.join(f'{n} {name}: {_listing(keys)}' for name, keys, n in
                         (('missing', missing, len(missing)), ('unexpected', extra, len(extra)))
                         if keys)
        raise ReleaseConversionError(f'detr-distill: the {arch} checkpoint is incomplete or '
                                     f'has foreign keys ({what})')
    embed = new_state['level_embed'].shape[-1]
    bad = [f'{k} {tuple(v.shape)}' for k, v in new_state.items()
           if k.startswith(('bbox_head.cls_branches.', 'bbox_head.reg_branches.'))
           and k.endswith('.weight') and v.shape[-1] != embed]
    if query is not None and query.shape[-1] != 2 * embed:
        bad.append(f'query_embedding.weight {tuple(query.shape)}')
    if bad:
        raise ReleaseConversionError(f'detr-distill: tensors whose shape does not fit embed '
                                     f'dims {embed}: {_listing(bad)}')
    report = ConversionReport(source='detr-distill', architecture=arch, mapped=len(new_state),
                              dropped=dropped)
    if not refine:
        report.notes.append(f'one classifier / box regressor shared by the {n_dec} decoder '
                            f'layers (no box refinement), saved once per layer as mmdet saves '
                            f'it')
    return new_state, report


DETR_DISTILL_FORMAT = register_format(ReleaseFormat(
    name='detr-distill', detect=detect_detr_distill, convert=convert_detr_distill, priority=10))
