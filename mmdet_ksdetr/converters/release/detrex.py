"""The ``detrex`` format: IDEA-Research/detrex model-zoo checkpoints -> mmdet detectors.

detrex saves ``{'model': state_dict, ...}`` with a detectron2 ResNet under ``backbone.``, its
``ChannelMapper`` under ``neck.`` (or a single-scale ``input_proj``), the transformer under
``transformer.`` (layers built from ``attentions`` / ``ffns`` / ``norms`` lists) and the heads as
``class_embed[.N]`` / ``bbox_embed[.N].layers.K``, also linked into the decoder
(``transformer.decoder.class_embed``, ``transformer.decoder.bbox_embed``: the same tensors).

One architecture is one row of :data:`ARCHITECTURES`: ``name -> (detect, convert)``, tried in
order (most specific first). ``detect(state) -> bool`` recognises the architecture from its key
names; ``convert(state, cfg, source=, arch=, report=) -> (mmdet state, ConversionReport)`` maps
it. The multi-scale rows (DINO, Deformable-DETR, DN-Deformable-DETR) are written here from the
shared :data:`_TRANSFORMER_RULES`; the single-scale ones (DAB-DETR, DN-DETR, Conditional-DETR) are
:mod:`.detrex_dab`'s. The ``ks-detr`` format uses the same table once the KS teacher streams
are dropped. To add an architecture, add its row and its entry in
:func:`_expected_architecture` (the config check).

The configs that compute what the release computes are in ``configs/detrex/``.
"""
import copy
import re
import warnings
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch

from mmdet_ksdetr.converters.release.api import (ConversionReport, ReleaseConversionError,
                                                 ReleaseFormat, register_format)
from mmdet_ksdetr.converters.release.detectron2_resnet import convert_detectron2_resnet
from mmdet_ksdetr.converters.release.detrex_dab import (convert_conditional_detr,
                                                        convert_dab_detr, convert_dn_detr,
                                                        detect_conditional_detr,
                                                        detect_dab_detr, detect_dn_detr)

__all__ = ['ARCHITECTURES', 'detect_architecture', 'is_detrex', 'convert_detrex',
           'convert_architecture', 'DETREX_FORMAT']

Rule = Tuple[str, Union[str, Callable[[re.Match], str]]]

# shared by every detrex DETR: neck, multi-scale transformer layers, heads
_TRANSFORMER_RULES: List[Rule] = [
    (r'neck\.(convs|extra_convs)\.(\d+)\.conv\.', r'neck.\1.\2.conv.'),
    (r'neck\.(convs|extra_convs)\.(\d+)\.norm\.', r'neck.\1.\2.gn.'),  # mmdet: ConvModule gn
    (r'transformer\.level_embeds$', 'level_embed'),
    (r'transformer\.encoder\.layers\.(\d+)\.attentions\.0\.', r'encoder.layers.\1.self_attn.'),
    (r'transformer\.decoder\.layers\.(\d+)\.attentions\.0\.', r'decoder.layers.\1.self_attn.'),
    (r'transformer\.decoder\.layers\.(\d+)\.attentions\.1\.', r'decoder.layers.\1.cross_attn.'),
    (r'transformer\.(en|de)coder\.layers\.(\d+)\.ffns\.0\.', r'\1coder.layers.\2.ffn.'),
    (r'transformer\.(en|de)coder\.layers\.(\d+)\.norms\.(\d)\.', r'\1coder.layers.\2.norms.\3.'),
    (r'class_embed\.(\d+)\.', r'bbox_head.cls_branches.\1.'),
    # detrex MLP: layers.K Linear; mmdet reg branch: Sequential(Linear, ReLU, Linear, ...)
    (r'bbox_embed\.(\d+)\.layers\.(\d+)\.',
     lambda m: f'bbox_head.reg_branches.{m[1]}.{2 * int(m[2])}.'),
]
_TWO_STAGE_RULES: List[Rule] = [
    (r'transformer\.enc_output\.', 'memory_trans_fc.'),
    (r'transformer\.enc_output_norm\.', 'memory_trans_norm.'),
]
_DINO_RULES: List[Rule] = _TRANSFORMER_RULES + _TWO_STAGE_RULES + [
    (r'transformer\.tgt_embed\.weight$', 'query_embedding.weight'),
    (r'transformer\.decoder\.ref_point_head\.', 'decoder.ref_point_head.'),
    (r'transformer\.decoder\.norm\.', 'decoder.norm.'),
    (r'label_enc\.weight$', 'dn_query_generator.label_embedding.weight'),
]
# detrex DN-Deformable-DETR: content queries tgt_embed (Q, C - 1; the indicator channel is added
# in the forward), anchors refpoint_embed (Q, 4), the decoder's query_scale / ref_point_head MLPs
_DN_DEFORMABLE_RULES: List[Rule] = _TRANSFORMER_RULES + [
    (r'tgt_embed\.weight$', 'content_embedding.weight'),
    (r'refpoint_embed\.weight$', 'query_embedding.weight'),
    (r'transformer\.decoder\.(query_scale|ref_point_head)\.', r'decoder.\1.'),
    (r'(denoising_generator\.label_encoder|label_enc)\.weight$',
     'dn_query_generator.label_embedding.weight'),
]
_DEFORMABLE_RULES: List[Rule] = _TRANSFORMER_RULES + _TWO_STAGE_RULES + [
    (r'query_embedding\.weight$', 'query_embedding.weight'),  # (num_queries, 2 * dim)
    (r'transformer\.reference_points\.', 'reference_points_fc.'),
    (r'transformer\.pos_trans\.', 'pos_trans_fc.'),
    (r'transformer\.pos_trans_norm\.', 'pos_trans_norm.'),
]


def _mapper(rules: Sequence[Rule]) -> Callable[[str], str]:
    """``map_key`` from prefix rules: the first rule whose pattern matches the start of the
    key replaces that start; the rest of the key (``weight``, ``attn.in_proj_bias`` ...)
    is kept."""
    compiled = [(re.compile(p), r) for p, r in rules]

    def map_key(key: str) -> str:
        for pattern, repl in compiled:
            m = pattern.match(key)
            if m:
                head = repl(m) if callable(repl) else m.expand(repl)
                return head + key[m.end():]
        raise KeyError(key)
    return map_key


def _has(state, *keys: str) -> bool:
    return all(k in state for k in keys)


def _is_dino(state) -> bool:
    return _has(state, 'label_enc.weight', 'transformer.tgt_embed.weight',
                'transformer.decoder.ref_point_head.layers.0.weight', 'transformer.level_embeds')


def _is_dn_deformable(state) -> bool:
    """Learnt content queries and anchors at the top level, a DN label encoder, deformable
    attention (detrex's DAB-Deformable-DETR has no label encoder)."""
    return _has(state, 'tgt_embed.weight', 'refpoint_embed.weight') and \
        any(k in state for k in ('denoising_generator.label_encoder.weight',
                                 'label_enc.weight')) and \
        any(k.endswith('sampling_offsets.weight') for k in state)


def _is_deformable_refine_twostage(state) -> bool:
    return _has(state, 'transformer.pos_trans.weight', 'transformer.enc_output.weight',
                'transformer.decoder.bbox_embed.0.layers.0.weight') and \
        not _has(state, 'transformer.pix_trans.weight')  # DETA


def _is_deformable_refine(state) -> bool:
    return _has(state, 'query_embedding.weight', 'transformer.reference_points.weight',
                'transformer.decoder.bbox_embed.0.layers.0.weight')


def _is_deformable(state) -> bool:
    return _has(state, 'query_embedding.weight', 'transformer.reference_points.weight',
                'class_embed.0.weight') and \
        not any(k.startswith('transformer.decoder.bbox_embed.') for k in state)


def _multiscale(name: str) -> Callable:
    """The ``convert`` of a multi-scale (DINO / Deformable-DETR) row."""
    def convert(state, cfg=None, source: str = 'detrex', arch: str = name,
                report: Optional[ConversionReport] = None):
        return _convert_multiscale(name, state, cfg, source, arch, report)
    convert.__name__ = f'convert_{name.lower().replace("-", "_")}'
    return convert


_MAPPERS: Dict[str, Callable[[str], str]] = {
    'DINO': _mapper(_DINO_RULES),
    'DN-Deformable-DETR': _mapper(_DN_DEFORMABLE_RULES),
    'Deformable-DETR-refine-twostage': _mapper(_DEFORMABLE_RULES),
    'Deformable-DETR-refine': _mapper(_DEFORMABLE_RULES),
    'Deformable-DETR': _mapper(_DEFORMABLE_RULES),
}

#: architecture name -> (detect(state) -> bool, convert(state, cfg, source=, arch=, report=));
#: tried in order
ARCHITECTURES: Dict[str, Tuple[Callable, Callable]] = {
    'DINO': (_is_dino, _multiscale('DINO')),
    'DN-Deformable-DETR': (_is_dn_deformable, _multiscale('DN-Deformable-DETR')),
    'Deformable-DETR-refine-twostage': (_is_deformable_refine_twostage,
                                        _multiscale('Deformable-DETR-refine-twostage')),
    'Deformable-DETR-refine': (_is_deformable_refine, _multiscale('Deformable-DETR-refine')),
    'Deformable-DETR': (_is_deformable, _multiscale('Deformable-DETR')),
    'DN-DETR': (detect_dn_detr, convert_dn_detr),
    'DAB-DETR': (detect_dab_detr, convert_dab_detr),
    'Conditional-DETR': (detect_conditional_detr, convert_conditional_detr),
}

# detrex architectures recognised (for a clear error) but not mapped yet
_KNOWN_UNMAPPED: Dict[str, Callable] = {
    'DAB-Deformable-DETR': lambda s: 'transformer.decoder.query_scale.layers.0.weight' in s and
    ('transformer.refpoint_embed.weight' in s or 'transformer.level_embeds' in s),
    'DETA': lambda s: 'transformer.pix_trans.weight' in s,
}


def is_detrex(state: Dict[str, torch.Tensor]) -> bool:
    """Whether ``state`` has detrex's key layout: transformer layers made of ``attentions``
    lists and heads named ``class_embed``."""
    return any(k.startswith('transformer.') and '.attentions.' in k for k in state) and \
        any(k.startswith('class_embed.') for k in state)


def detect_architecture(state: Dict[str, torch.Tensor], mapped_only: bool = True,
                        source: str = 'detrex', prefix: str = '') -> str:
    """The :data:`ARCHITECTURES` name of a detrex state dict (with ``mapped_only=False`` also
    the name of a recognised detrex architecture that has no mapping yet); ``source`` and
    ``prefix`` name a derived release in the errors.

    Raises:
        ReleaseConversionError: an unmapped (with ``mapped_only``) or unknown architecture.
    """
    for name, (detect, _) in ARCHITECTURES.items():
        if detect(state):
            return name
    mapped = ', '.join(ARCHITECTURES)
    for name, detect in _KNOWN_UNMAPPED.items():
        if detect(state):
            if not mapped_only:
                return name
            raise ReleaseConversionError(
                f'found a {source} {prefix}{name} checkpoint, which has no mapping yet '
                f'(mapped: {prefix}{f", {prefix}".join(ARCHITECTURES)})')
    raise ReleaseConversionError(f'{source} checkpoint of an unknown architecture (mapped: '
                                 f'{mapped}); first keys: {", ".join(list(state)[:3])}')


def _num_levels(state) -> int:
    return int(state['transformer.level_embeds'].shape[0])


def _display_name(arch: str, state) -> str:
    return f'DINO-{_num_levels(state)}scale' if arch == 'DINO' and \
        'transformer.level_embeds' in state else arch


def _model_cfg(cfg):
    """The model part of a full config or of a model config (None stays None)."""
    if cfg is None:
        return None
    return cfg['model'] if 'model' in cfg else cfg


def _expected_architecture(model_cfg) -> Optional[str]:
    """The :data:`ARCHITECTURES` name the config's detector takes, None if none does."""
    from mmdet.models.detectors import DINO, ConditionalDETR, DABDETR, DeformableDETR
    from mmdet.registry import MODELS
    import mmdet_ksdetr.models  # noqa: F401  (registers the Detrex* classes)
    from mmdet_ksdetr.models.detrex import DetrexDNDeformableDETR
    from mmdet_ksdetr.models.dn_detr import DNDeformableDETR, DNDETR
    cls = MODELS.get(model_cfg['type'])
    if cls is None:
        return None
    if issubclass(cls, DINO):
        return 'DINO'
    if issubclass(cls, DetrexDNDeformableDETR):
        return 'DN-Deformable-DETR'
    if issubclass(cls, DNDeformableDETR):  # "no object" content queries, normed decoder
        return 'DNDeformableDETR (the release\'s layout is DetrexDNDeformableDETR\'s)'
    if issubclass(cls, DeformableDETR):
        name = 'Deformable-DETR'
        if model_cfg.get('with_box_refine', False):
            name += '-refine'
        if model_cfg.get('as_two_stage', False):
            name += '-twostage'
        return name
    for base, name in ((DNDETR, 'DN-DETR'), (DABDETR, 'DAB-DETR'),
                       (ConditionalDETR, 'Conditional-DETR')):
        if issubclass(cls, base):
            return name
    return None


def _check_architecture(found: str, state, model_cfg, source: str = 'detrex',
                        arch: Optional[str] = None) -> None:
    """The release architecture ``found`` against the one the config builds (one line)."""
    expected = _expected_architecture(model_cfg)
    if expected != found:
        builds = expected or f'a {model_cfg["type"]} model (no {source} mapping)'
        raise ReleaseConversionError(
            f'found a {source} {arch or _display_name(found, state)} checkpoint, but the '
            f'config builds {builds}: use the config of that release (configs/detrex/, '
            f'configs/ks_detr/release/)')


def _check_config(state, model_cfg, source: str, arch: str) -> None:
    """Class count and feature levels of a multi-scale release against the config."""
    n_cls = int(state['class_embed.0.weight'].shape[0])
    cfg_cls = model_cfg.get('bbox_head', {}).get('num_classes')
    if cfg_cls != n_cls:
        raise ReleaseConversionError(
            f'the {source} {arch} checkpoint has {n_cls} classes, the config\'s '
            f'bbox_head.num_classes is {cfg_cls}: set num_classes={n_cls}')
    levels = model_cfg.get('num_feature_levels', 4)
    if levels != _num_levels(state):
        raise ReleaseConversionError(
            f'the {source} {arch} checkpoint has {_num_levels(state)} feature levels, the '
            f'config\'s '
            f'num_feature_levels is {levels}')


def _release_differences(arch: str, model_cfg) -> List[str]:
    """Settings of the config where the computation would differ from detrex's."""
    out = []
    pe = model_cfg.get('positional_encoding', {})
    if pe.get('temperature', 10000) != 10000 or pe.get('offset', 0.0) != -0.5:
        out.append(f'positional_encoding temperature {pe.get("temperature", 10000)} / offset '
                   f'{pe.get("offset", 0.0)} (release: 10000 / -0.5)')
    if model_cfg.get('neck', {}).get('bias', 'auto') is not True:
        out.append('neck.bias is not True (release: conv biases before GroupNorm)')
    head = model_cfg.get('bbox_head', {}).get('type', '')
    if not str(head).startswith('Detrex'):
        out.append(f'bbox_head {head} (release clamps references at 1e-3: Detrex{head})')
    exact = 'DetrexDNDeformableDETR' if arch == 'DN-Deformable-DETR' else 'DetrexDeformableDETR'
    if arch != 'DINO' and model_cfg.get('with_box_refine', False) and \
            model_cfg.get('type') != exact:
        out.append(f'model {model_cfg.get("type")} (release clamps references at 1e-3 in the '
                   f'decoder: {exact})')
    if arch != 'DINO' and model_cfg.get('test_cfg', {}).get('max_per_img') != 300:
        out.append('test_cfg.max_per_img is not 300 (release keeps 300 boxes)')
    return out


def _target_shapes(model_cfg) -> Dict[str, torch.Size]:
    """Names and shapes of the state dict of the detector the config builds."""
    from mmdet.registry import MODELS
    import mmdet_ksdetr.models  # noqa: F401  (registers the Detrex* classes)
    with torch.device('meta'):
        model = MODELS.build(copy.deepcopy(model_cfg))
    return {k: v.shape for k, v in model.state_dict().items()}


def _map_state(arch: str, state) -> Tuple[Dict[str, torch.Tensor], int]:
    """Every release tensor under its mmdet name; returns (new state, aliases checked)."""
    map_key = _MAPPERS[arch]
    try:
        new, used = convert_detectron2_resnet(state)
    except KeyError as e:
        raise ReleaseConversionError(
            f'backbone key "backbone.{e.args[0]}" is not a detectron2 ResNet tensor (only '
            f'ResNet backbones are mapped)') from None
    aliases = 0
    for key, value in state.items():
        if key in used:
            continue
        if key.startswith(('transformer.decoder.class_embed.',
                           'transformer.decoder.bbox_embed.')):
            primary = key[len('transformer.decoder.'):]
            if primary not in state or not torch.equal(state[primary], value):
                raise ReleaseConversionError(
                    f'"{key}" should be the decoder\'s link to "{primary}" (the same tensor), '
                    f'found {"no such key" if primary not in state else "different values"}')
            aliases += 1
            continue
        try:
            target = map_key(key)
        except KeyError:
            raise ReleaseConversionError(
                f'detrex {arch} checkpoint: no mmdet name for "{key}" '
                f'({tuple(value.shape)})') from None
        if target in new:
            raise ReleaseConversionError(f'two release keys map to "{target}" (one is "{key}")')
        new[target] = value
    return new, aliases


def _compare(new: Dict[str, torch.Tensor], target: Dict[str, torch.Size]) -> None:
    missing = [k for k in target if k not in new]
    extra = [k for k in new if k not in target]
    bad = [k for k in new if k in target and tuple(new[k].shape) != tuple(target[k])]
    if missing:
        raise ReleaseConversionError(
            f'the config\'s model has {len(missing)} tensors the checkpoint does not fill, '
            f'e.g. "{missing[0]}" {tuple(target[missing[0]])}')
    if extra:
        raise ReleaseConversionError(
            f'{len(extra)} converted tensors have no place in the config\'s model, e.g. '
            f'"{extra[0]}" {tuple(new[extra[0]].shape)}')
    if bad:
        k = bad[0]
        raise ReleaseConversionError(
            f'shape mismatch for "{k}": checkpoint {tuple(new[k].shape)}, config\'s model '
            f'{tuple(target[k])} ({len(bad)} tensors differ)')


def _convert_multiscale(name: str, state: Dict[str, torch.Tensor], cfg, source: str,
                        arch: str, report: Optional[ConversionReport]
                        ) -> Tuple[Dict[str, torch.Tensor], ConversionReport]:
    """A DINO / (DN-)Deformable-DETR row (``name``) of :data:`ARCHITECTURES`; ``arch`` is the name
    reported (e.g. ``KS-Deformable-DETR``)."""
    model_cfg = _model_cfg(cfg)
    if report is None:
        report = ConversionReport(source=source)
    report.architecture = _display_name(name, state) if arch == name else arch
    if model_cfg is not None:
        _check_config(state, model_cfg, source, report.architecture)
    new, aliases = _map_state(name, state)
    if model_cfg is not None:
        _compare(new, _target_shapes(model_cfg))
        diffs = _release_differences(name, model_cfg)
        if diffs:
            msg = (f'the config computes differently from the {source} release: ' +
                   '; '.join(diffs) + ' (configs/detrex/ matches it)')
            report.notes.append(msg)
            warnings.warn(msg)
    report.mapped = len(state) - aliases
    if aliases:
        report.notes.append(f'{aliases} transformer.decoder.class_embed/bbox_embed tensors are '
                            f'links to class_embed/bbox_embed (checked equal), written once')
    report.notes.append(f'{int(state["class_embed.0.weight"].shape[0])} classes, kept in '
                        f'order (detrex COCO order = mmdet CocoDataset order)')
    return new, report


def convert_architecture(state: Dict[str, torch.Tensor], cfg=None, source: str = 'detrex',
                         prefix: str = '', report: Optional[ConversionReport] = None
                         ) -> Tuple[Dict[str, torch.Tensor], ConversionReport]:
    """Detect the :data:`ARCHITECTURES` row of ``state``, check it against the config and
    convert it; ``prefix`` names a derived release (``'KS-'``)."""
    model_cfg = _model_cfg(cfg)
    if model_cfg is not None:  # a mismatch with the config first: it names both sides
        found = detect_architecture(state, False, source, prefix)
        _check_architecture(found, state, model_cfg, source,
                            prefix + found if prefix else None)
    name = detect_architecture(state, True, source, prefix)
    if report is not None:
        report.architecture = prefix + name
    _, convert = ARCHITECTURES[name]
    kwargs = dict(arch=prefix + name) if prefix else {}
    return convert(state, cfg, source=source, report=report, **kwargs)


def convert_detrex(state: Dict[str, torch.Tensor], cfg=None
                   ) -> Tuple[Dict[str, torch.Tensor], ConversionReport]:
    """Convert a detrex state dict (the ``ReleaseFormat.convert`` of ``detrex``).

    Args:
        state (dict): release tensors (``ckpt['model']``).
        cfg: the config (full or ``model`` part) of the target detector, or None. With it, the
            architecture, class count, layer counts and every converted name and shape are
            checked against the model it builds; settings where its computation would differ
            from the release's are reported (warning and report note).

    Returns:
        tuple: mmdet state dict and :class:`ConversionReport`.
    """
    return convert_architecture(state, cfg)


DETREX_FORMAT = register_format(ReleaseFormat(name='detrex', detect=is_detrex,
                                              convert=convert_detrex, priority=0))
