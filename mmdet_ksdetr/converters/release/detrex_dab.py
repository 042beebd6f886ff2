"""detrex DAB-DETR, Conditional-DETR and DN-DETR checkpoints -> mmdet's (and our DN) detectors.

Plain functions, one pair per architecture (``detect_<arch>(state) -> bool`` and
``convert_<arch>(state, cfg) -> (mmdet_state, ConversionReport)``): the single-scale rows of
the ``detrex`` format's :data:`~.detrex.ARCHITECTURES` table, which the ``ks-detr`` format
also uses (a KS checkpoint without its teacher streams is one of these).

detrex names the single-scale DETR transformer ``transformer.{encoder,decoder}.layers.<i>``
with ``attentions.<j>`` / ``ffns.0`` / ``norms.<k>``; the decoder attentions spell their
projections ``query_content_proj`` ... ``value_proj`` where mmdet writes ``qcontent_proj`` ...
``v_proj``. The input projection ``input_proj`` is mmdet's one-level ``ChannelMapper`` conv
(with bias, no norm). The backbone is detectron2's ResNet (:mod:`.detectron2_resnet`) or its
Swin Transformer (:mod:`.swin`, the mapping the DAC-DETR converter uses too). Tensors that
detrex stores twice are dropped with the name of their twin:
``transformer.decoder.bbox_embed.*`` is ``bbox_embed.*`` (the box head shared with the
decoder's anchor update) and ``ffns.0.activation.weight`` is ``ffns.0.layers.0.1.weight``
(the PReLU module registered twice). The class order is the same (80 contiguous COCO classes,
mmdet's order).
"""
import re
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import torch

from mmdet_ksdetr.converters.release.api import ConversionReport, ReleaseConversionError
from mmdet_ksdetr.converters.release.detectron2_resnet import (convert_detectron2_resnet,
                                                               is_detectron2_resnet)
from mmdet_ksdetr.converters.release.swin import (convert_swin, is_swin,
                                                  swin_config_mismatch)

__all__ = ['detect_dab_detr', 'convert_dab_detr', 'detect_dn_detr', 'convert_dn_detr',
           'detect_conditional_detr', 'convert_conditional_detr', 'model_cfg', 'expect_model',
           'map_keys']

#: decoder attention projection names, detrex -> mmdet
_DEC_PROJ = {'query_content_proj': 'qcontent_proj', 'query_pos_proj': 'qpos_proj',
             'query_pos_sine_proj': 'qpos_sine_proj', 'key_content_proj': 'kcontent_proj',
             'key_pos_proj': 'kpos_proj', 'value_proj': 'v_proj', 'out_proj': 'out_proj'}
_PROJ = '|'.join(_DEC_PROJ)

Rule = Tuple[str, object]  # (regex on the release key, replacement str or callable(match))


def _dec_attn(m: re.Match) -> str:
    which = 'self_attn' if m.group(2) == '0' else 'cross_attn'
    return f'decoder.layers.{m.group(1)}.{which}.{_DEC_PROJ[m.group(3)]}.{m.group(4)}'


#: transformer rules shared by DAB-DETR, DN-DETR and Conditional-DETR
_SINGLE_SCALE_RULES: List[Rule] = [
    (r'^input_proj\.(weight|bias)$', r'neck.convs.0.conv.\1'),
    (r'^transformer\.encoder\.layers\.(\d+)\.attentions\.0\.attn\.(.+)$',
     r'encoder.layers.\1.self_attn.attn.\2'),
    (r'^transformer\.(encoder|decoder)\.layers\.(\d+)\.ffns\.0\.layers\.(.+)$',
     r'\1.layers.\2.ffn.layers.\3'),
    (r'^transformer\.(encoder|decoder)\.layers\.(\d+)\.norms\.(\d)\.(weight|bias)$',
     r'\1.layers.\2.norms.\3.\4'),
    (rf'^transformer\.decoder\.layers\.(\d+)\.attentions\.([01])\.({_PROJ})\.(weight|bias)$',
     _dec_attn),
    (r'^transformer\.decoder\.post_norm_layer\.(weight|bias)$', r'decoder.post_norm.\1'),
    (r'^transformer\.(encoder|decoder)\.(query_scale|ref_point_head|ref_anchor_head)\.(.+)$',
     r'\1.\2.\3'),
    (r'^class_embed\.(weight|bias)$', r'bbox_head.fc_cls.\1'),
    (r'^bbox_embed\.layers\.(\d)\.(weight|bias)$', r'bbox_head.fc_reg.layers.\1.\2'),
]

#: release tensors stored twice: regex -> why dropped
_TWINS = [
    (r'^transformer\.decoder\.bbox_embed\.', 'same tensor as bbox_embed.* (box head shared with '
                                             'the decoder anchor update)'),
    (r'\.ffns\.0\.activation\.weight$', 'same tensor as ffns.0.layers.0.1.weight (the PReLU '
                                        'module registered twice)'),
]


def model_cfg(cfg) -> Optional[dict]:
    """The model dict of ``cfg`` (a full config or a model config), or None."""
    if cfg is None:
        return None
    if 'model' in cfg and isinstance(cfg['model'], dict):
        return cfg['model']
    return cfg


def expect_model(cfg, types: Sequence[str], arch: str, source: str) -> Optional[dict]:
    """Stop with one line when the config's model type is not one of ``types``."""
    model = model_cfg(cfg)
    if model is None:
        return None
    found = model.get('type')
    if found not in types:
        raise ReleaseConversionError(
            f'{source} checkpoint is {arch}, but the config builds a {found} model: use a '
            f'{" / ".join(types)} config (configs/detrex/)')
    return model


def _note_stock(model: Optional[dict], stock: str, exact: str,
                report: ConversionReport) -> None:
    if model is not None and model.get('type') == stock:
        report.notes.append(f'{stock} differs from detrex where an anchor coordinate is within '
                            f'1e-3 of 0 or 1 (inverse_sigmoid eps); {exact} (configs/detrex/) '
                            f'computes what the release computes')


def check_classes(state: Dict[str, torch.Tensor], key: str, model: Optional[dict],
                  arch: str, source: str) -> int:
    """The checkpoint's class count (rows of ``key``), checked against the config's."""
    if key not in state:
        raise ReleaseConversionError(f'{source} {arch} checkpoint has no {key}')
    found = state[key].shape[0]
    expected = None
    if model is not None:
        expected = (model.get('bbox_head') or {}).get('num_classes')
    if expected is not None and expected != found:
        raise ReleaseConversionError(
            f'{source} {arch} checkpoint has {found} classes ({key} has {found} rows), the '
            f'config has num_classes={expected}: use a config with num_classes={found}')
    return found


def check_layers(state: Dict[str, torch.Tensor], model: Optional[dict], arch: str,
                 source: str) -> None:
    """The checkpoint's encoder / decoder layer counts against the config's."""
    if model is None:
        return
    for part in ('encoder', 'decoder'):
        idx = {int(m.group(1)) for k in state
               for m in [re.match(rf'^transformer\.{part}\.layers\.(\d+)\.', k)] if m}
        expected = (model.get(part) or {}).get('num_layers')
        if idx and expected is not None and max(idx) + 1 != expected:
            raise ReleaseConversionError(
                f'{source} {arch} checkpoint has {max(idx) + 1} {part} layers, the config '
                f'has {part}.num_layers={expected}')


def map_keys(state: Dict[str, torch.Tensor], rules: Iterable[Rule], report: ConversionReport,
             twins: Iterable[Tuple[str, str]] = (), skip: Iterable[str] = ()
             ) -> Dict[str, torch.Tensor]:
    """Apply ``rules`` to every key of ``state`` (the backbone goes through the detectron2
    ResNet or the Swin mapping); twins are dropped with their reason; ``skip`` are keys already
    handled.

    Raises:
        ReleaseConversionError: a key no rule maps (its name).
    """
    rules = [(re.compile(p), r) for p, r in rules]
    twins = [(re.compile(p), why) for p, why in twins]
    skip = set(skip)
    out: Dict[str, torch.Tensor] = {}
    if is_detectron2_resnet(state) or is_swin(state):
        kind, convert = (('detectron2 ResNet', convert_detectron2_resnet)
                         if is_detectron2_resnet(state) else ('Swin', convert_swin))
        try:
            backbone, used = convert(state)
        except KeyError as e:
            raise ReleaseConversionError(f'{report.source} {report.architecture} checkpoint: '
                                         f'unknown {kind} backbone tensor backbone.{e.args[0]}')
        except ValueError as e:
            raise ReleaseConversionError(f'{report.source} {report.architecture} checkpoint: '
                                         f'{e}')
        out.update(backbone)
        skip |= used
    else:
        first = next((k for k in state if k.startswith('backbone.')), None)
        if first is not None:
            raise ReleaseConversionError(
                f'{report.source} {report.architecture} checkpoint: the backbone ({first}) is '
                f'neither a detectron2 ResNet nor a Swin Transformer (the backbones mapped)')
    for key, value in state.items():
        if key in skip:
            continue
        why = next((w for p, w in twins if p.search(key)), None)
        if why is not None:
            report.dropped[key] = why
            continue
        for pattern, repl in rules:
            m = pattern.match(key)
            if m:
                new = repl(m) if callable(repl) else m.expand(repl)
                out[new] = value
                break
        else:
            raise ReleaseConversionError(f'{report.source} {report.architecture} checkpoint: '
                                         f'no mapping for {key} ({tuple(value.shape)})')
    report.mapped = len(out)
    return out


def check_backbone(state: Dict[str, torch.Tensor], model: Optional[dict], arch: str,
                   source: str) -> None:
    """The checkpoint's backbone (ResNet or Swin, and the Swin settings) and input projection
    width against the config's backbone and neck."""
    if model is None:
        return
    backbone = model.get('backbone') or {}
    found = 'SwinTransformer' if is_swin(state) else 'ResNet'
    if backbone.get('type', found) != found:
        raise ReleaseConversionError(
            f'{source} {arch} checkpoint has a {found} backbone, the config\'s backbone is '
            f'{backbone.get("type")}: use the config of that release (configs/detrex/, '
            f'configs/ks_detr/release/)')
    if found == 'SwinTransformer':
        try:
            why = swin_config_mismatch(state, backbone)
        except KeyError as e:
            raise ReleaseConversionError(f'{source} {arch} checkpoint: unreadable Swin '
                                         f'backbone ({e.args[0]})') from None
        if why:
            raise ReleaseConversionError(f'{source} {arch} checkpoint does not fit the config: '
                                         f'{why}')
    proj = state.get('input_proj.weight')
    in_channels = (model.get('neck') or {}).get('in_channels')
    if proj is not None and in_channels is not None and list(in_channels) != [proj.shape[1]]:
        raise ReleaseConversionError(
            f'{source} {arch} checkpoint projects {proj.shape[1]} backbone channels '
            f'(input_proj.weight), the config\'s neck.in_channels is {list(in_channels)}')


#: the DN label encoder: detrex's DN-DETR names it denoising_generator.label_encoder
_LABEL_ENCODER = ('denoising_generator.label_encoder.weight', 'label_enc.weight')


# ------------------------------------------------------------------------------ DAB-DETR
def _checked(state: Dict[str, torch.Tensor], cfg, source: str, arch: str,
             types: Sequence[str], report: Optional[ConversionReport],
             stock: Optional[Tuple[str, str]] = None) -> ConversionReport:
    """The report of a single-scale conversion after the checks every architecture makes: the
    config builds one of ``types``, same class count and layer counts; with ``stock`` =
    (stock type, detrex-exact type), a note when the config uses the stock one."""
    report = report or ConversionReport(source=source, architecture=arch)
    model = expect_model(cfg, types, arch, source)
    check_classes(state, 'class_embed.weight', model, arch, source)
    check_layers(state, model, arch, source)
    check_backbone(state, model, arch, source)
    if stock is not None:
        _note_stock(model, *stock, report)
    return report


def detect_dab_detr(state: Dict[str, torch.Tensor]) -> bool:
    """detrex DAB-DETR: learnt 4-d anchors and the encoder query-scale MLP, no label encoder."""
    return ('anchor_box_embed.weight' in state and
            'transformer.encoder.query_scale.layers.0.weight' in state and
            not any(k in state for k in _LABEL_ENCODER))


def convert_dab_detr(state: Dict[str, torch.Tensor], cfg=None, source: str = 'detrex',
                     arch: str = 'DAB-DETR', types: Sequence[str] = ('DetrexDABDETR', 'DABDETR'),
                     report: Optional[ConversionReport] = None
                     ) -> Tuple[Dict[str, torch.Tensor], ConversionReport]:
    """detrex DAB-DETR -> mmdet ``DABDETR`` (``anchor_box_embed`` -> ``query_embedding``)."""
    report = _checked(state, cfg, source, arch, types, report, ('DABDETR', 'DetrexDABDETR'))
    rules = _SINGLE_SCALE_RULES + [(r'^anchor_box_embed\.weight$', 'query_embedding.weight')]
    return map_keys(state, rules, report, _TWINS), report


# ------------------------------------------------------------------------------ DN-DETR
def detect_dn_detr(state: Dict[str, torch.Tensor]) -> bool:
    """detrex DN-DETR: DAB-DETR plus the denoising label encoder
    (``denoising_generator.label_encoder``)."""
    return 'anchor_box_embed.weight' in state and any(k in state for k in _LABEL_ENCODER)


def convert_dn_detr(state: Dict[str, torch.Tensor], cfg=None, source: str = 'detrex',
                    arch: str = 'DN-DETR', types: Sequence[str] = ('DetrexDNDETR', 'DNDETR'),
                    report: Optional[ConversionReport] = None
                    ) -> Tuple[Dict[str, torch.Tensor], ConversionReport]:
    """detrex DN-DETR -> our ``DNDETR`` (``label_enc`` -> the denoising label embedding,
    ``num_classes + 1`` rows of ``embed_dim - 1`` plus the indicator)."""
    report = _checked(state, cfg, source, arch, types, report, ('DNDETR', 'DetrexDNDETR'))
    rules = _SINGLE_SCALE_RULES + [
        (r'^anchor_box_embed\.weight$', 'query_embedding.weight'),
        (r'^(label_enc|denoising_generator\.label_encoder)\.weight$',
         'dn_query_generator.label_embedding.weight')]
    return map_keys(state, rules, report, _TWINS), report


# ------------------------------------------------------------------------------ Conditional
def detect_conditional_detr(state: Dict[str, torch.Tensor]) -> bool:
    """detrex Conditional-DETR: content-free query embedding plus the reference-point MLP."""
    return ('query_embed.weight' in state and
            'transformer.decoder.ref_point_head.layers.0.weight' in state and
            'anchor_box_embed.weight' not in state and
            not any('sampling_offsets' in k for k in state))


def convert_conditional_detr(state: Dict[str, torch.Tensor], cfg=None, source: str = 'detrex',
                             arch: str = 'Conditional-DETR',
                             types: Sequence[str] = ('ConditionalDETR',),
                             report: Optional[ConversionReport] = None
                             ) -> Tuple[Dict[str, torch.Tensor], ConversionReport]:
    """detrex Conditional-DETR -> mmdet ``ConditionalDETR``."""
    report = _checked(state, cfg, source, arch, types, report)
    # mmdet's ConditionalDETRHead: reg_ffn (Linear, ReLU, Linear), ReLU, fc_reg (Linear)
    rules = [(r'^bbox_embed\.layers\.0\.(weight|bias)$', r'bbox_head.reg_ffn.layers.0.0.\1'),
             (r'^bbox_embed\.layers\.1\.(weight|bias)$', r'bbox_head.reg_ffn.layers.1.\1'),
             (r'^bbox_embed\.layers\.2\.(weight|bias)$', r'bbox_head.fc_reg.\1'),
             (r'^query_embed\.weight$', 'query_embedding.weight')] + _SINGLE_SCALE_RULES
    return map_keys(state, rules, report, _TWINS), report
