"""``dac-detr``: the released DAC-DETR checkpoints (huzhengdongcs/DAC-DETR, dac_cdn and
dac_cdn_ice, R50 and Swin-L) -> :class:`~mmdet_ksdetr.models.dac_detr.ReleaseDACDETR`.

The release is its own two-stage Deformable DETR (``backbone.0.body.*``, ``input_proj.*``,
``transformer.*``, ``class_embed.*``, ``bbox_embed.*``, ``query_embed``, ``label_enc``). The
mapping renames every tensor, re-indexes the 91 class rows (indexed by COCO category id) to
mmdet's 80 contiguous classes, maps the Swin backbone (:mod:`.swin`, shared with the KS-DETR
converter: names and the patch-merging channel order), adds the BN
``num_batches_tracked`` counters mmdet's ResNet keeps, and drops two kinds of keys with a
reason: the CDN label encoder (training only) and the decoder's second names of the prediction
heads. The C-stream has no parameters of its own. With a config, the result is checked against
the model it builds (names and shapes), so a wrong variant stops here with one line.
"""
import copy
import re
from typing import Dict, List, Optional, Tuple

import torch

from mmdet_ksdetr.converters.release.api import (ConversionReport, ReleaseConversionError,
                                                 ReleaseFormat, register_format)
from mmdet_ksdetr.converters.release.swin import convert_swin, is_swin

__all__ = ['COCO_CATEGORY_IDS', 'detect', 'convert', 'DAC_DETR_FORMAT']

#: COCO category ids of mmdet's 80 classes, in mmdet's order (class i <- release row ids[i])
COCO_CATEGORY_IDS = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27,
    28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53,
    54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80,
    81, 82, 84, 85, 86, 87, 88, 89, 90)
RELEASE_CLASS_ROWS = 91  # category ids 0..90

_SIGNATURE = ('label_enc.weight', 'query_embed.weight', 'transformer.pos_trans.weight',
              'transformer.enc_output.weight', 'class_embed.0.weight',
              'transformer.decoder.layers.0.cross_attn.sampling_offsets.weight')

_ENC_LAYER = {'norm1': 'norms.0', 'norm2': 'norms.1', 'linear1': 'ffn.layers.0.0',
              'linear2': 'ffn.layers.1'}
_DEC_LAYER = {'norm2': 'norms.0', 'norm1': 'norms.1', 'norm3': 'norms.2',
              'linear1': 'ffn.layers.0.0', 'linear2': 'ffn.layers.1'}
_TRANSFORMER = {'level_embed': 'level_embed', 'enc_output': 'memory_trans_fc',
                'enc_output_norm': 'memory_trans_norm', 'pos_trans': 'pos_trans_fc',
                'pos_trans_norm': 'pos_trans_norm'}
_BACKBONE = 'backbone.0.body.'


def detect(state: Dict[str, torch.Tensor]) -> bool:
    """The DAC-DETR release's key names: Deformable-DETR ``transformer.*`` with ``cross_attn``,
    two-stage ``pos_trans``, mixed-selection ``query_embed`` and the CDN ``label_enc``."""
    return all(k in state for k in _SIGNATURE)


def _rename(key: str, levels_1x1: int) -> Optional[str]:
    """The mmdet name of a release tensor, or None where no rule applies."""
    if key.startswith(_BACKBONE):  # torchvision ResNet: mmdet's names (Swin: convert_swin)
        return 'backbone.' + key[len(_BACKBONE):]
    m = re.fullmatch(r'input_proj\.(\d+)\.([01])\.(weight|bias)', key)
    if m:
        lvl, part = int(m.group(1)), ('conv', 'gn')[int(m.group(2))]
        where = f'convs.{lvl}' if lvl < levels_1x1 else f'extra_convs.{lvl - levels_1x1}'
        return f'neck.{where}.{part}.{m.group(3)}'
    m = re.fullmatch(r'transformer\.(\w+?)(\.weight|\.bias|)', key)
    if m and m.group(1) in _TRANSFORMER:
        return _TRANSFORMER[m.group(1)] + m.group(2)
    m = re.fullmatch(r'transformer\.encoder\.layers\.(\d+)\.(self_attn\..+|(\w+)\.(weight|bias))',
                     key)
    if m:
        sub = m.group(2) if m.group(3) is None else _sub(_ENC_LAYER, m.group(3), m.group(4))
        return sub and f'encoder.layers.{m.group(1)}.{sub}'
    m = re.fullmatch(r'transformer\.decoder\.layers\.(\d+)\.(cross_attn\..+|self_attn\.(.+)|'
                     r'(\w+)\.(weight|bias))', key)
    if m:
        if m.group(3) is not None:
            sub = 'self_attn.attn.' + m.group(3)
        elif m.group(4) is not None:
            sub = _sub(_DEC_LAYER, m.group(4), m.group(5))
        else:
            sub = m.group(2)
        return sub and f'decoder.layers.{m.group(1)}.{sub}'
    m = re.fullmatch(r'class_embed\.(\d+)\.(weight|bias)', key)
    if m:
        return f'bbox_head.cls_branches.{m.group(1)}.{m.group(2)}'
    m = re.fullmatch(r'bbox_embed\.(\d+)\.layers\.(\d)\.(weight|bias)', key)
    if m:
        return f'bbox_head.reg_branches.{m.group(1)}.{2 * int(m.group(2))}.{m.group(3)}'
    if key == 'query_embed.weight':
        return 'query_embedding.weight'
    return None


def _sub(table: Dict[str, str], name: str, param: str) -> Optional[str]:
    return f'{table[name]}.{param}' if name in table else None


def _model_cfg(cfg):
    if cfg is None:
        return None
    model = cfg.get('model', None) if hasattr(cfg, 'get') else None
    return model if model is not None else cfg


def _expected_state(model_cfg) -> Dict[str, torch.Size]:
    """Names and shapes of the state dict of the model ``model_cfg`` builds (on the meta
    device where the modules allow it: nothing is allocated)."""
    from mmdet.registry import MODELS
    from mmengine.config import ConfigDict

    import mmdet_ksdetr.models  # noqa: F401  (registers ReleaseDACDETR)
    model_cfg = ConfigDict(copy.deepcopy(dict(model_cfg)))  # building edits nested dicts
    model_cfg.get('backbone', {}).pop('init_cfg', None)
    try:
        with torch.device('meta'):
            model = MODELS.build(copy.deepcopy(model_cfg))
    except RuntimeError:  # a module that reads a tensor value while building (Swin's .item())
        model = MODELS.build(model_cfg)
    return {k: v.shape for k, v in model.state_dict().items()}


def convert(state: Dict[str, torch.Tensor],
            cfg=None) -> Tuple[Dict[str, torch.Tensor], ConversionReport]:
    """Release tensors -> ``ReleaseDACDETR`` state dict (see the module docstring)."""
    model_cfg = _model_cfg(cfg)
    rows = state['class_embed.0.weight'].shape[0]
    if rows != RELEASE_CLASS_ROWS:
        raise ReleaseConversionError(
            f'DAC-DETR release checkpoint with {rows} class rows: the COCO release has '
            f'{RELEASE_CLASS_ROWS} (category ids 0-90); only COCO checkpoints convert')
    num_classes = len(COCO_CATEGORY_IDS)
    if model_cfg is not None:
        head_classes = model_cfg.get('bbox_head', {}).get('num_classes')
        if head_classes != num_classes:
            raise ReleaseConversionError(
                f'the config\'s bbox_head.num_classes is {head_classes}: DAC-DETR release '
                f'checkpoints are COCO ({RELEASE_CLASS_ROWS} category-id rows -> {num_classes} '
                f'classes); use a configs/dac_detr/release/ config')
    swin = is_swin(state, _BACKBONE)
    levels_1x1 = sum(1 for k, v in state.items()
                     if re.fullmatch(r'input_proj\.\d+\.0\.weight', k) and v.shape[-1] == 1)
    num_heads = sum(1 for k in state if re.fullmatch(r'class_embed\.\d+\.weight', k))
    ids = torch.tensor(COCO_CATEGORY_IDS)
    enc_ids = torch.cat([ids.new_zeros(1), ids[1:]])  # proposals are ranked by row 0

    out: Dict[str, torch.Tensor] = {}
    used = set()
    if swin:
        try:
            out, used = convert_swin(state, _BACKBONE, 'backbone.')
        except KeyError as e:
            raise ReleaseConversionError(f'DAC-DETR release checkpoint: "{_BACKBONE}{e.args[0]}"'
                                         f' is not a Swin Transformer tensor') from None
        except ValueError as e:
            raise ReleaseConversionError(f'DAC-DETR release checkpoint: {e}') from None
    dropped: Dict[str, str] = {}
    unmapped: List[str] = []
    for key, value in state.items():
        if key in used:
            continue
        if key == 'label_enc.weight':
            dropped[key] = 'CDN label encoder: builds the denoising queries in training only'
            continue
        m = re.fullmatch(r'transformer\.decoder\.((class|bbox)_embed\..+)', key)
        if m:
            if m.group(1) not in state or not torch.equal(state[m.group(1)], value):
                raise ReleaseConversionError(
                    f'"{key}" differs from "{m.group(1)}": the release registers the heads '
                    'twice with the same tensors; the checkpoint is damaged or not DAC-DETR')
            dropped[key] = f'second name of {m.group(1)} (the same tensor)'
            continue
        new = _rename(key, levels_1x1)
        if new is None:
            unmapped.append(key)
            continue
        m = re.fullmatch(r'bbox_head\.cls_branches\.(\d+)\.(weight|bias)', new)
        if m:
            value = value[enc_ids if int(m.group(1)) == num_heads - 1 else ids]
        out[new] = value
        if new.startswith('backbone.') and new.endswith('.running_mean') and not swin:
            out[new[:-len('running_mean')] + 'num_batches_tracked'] = torch.tensor(0)
    if unmapped:
        raise ReleaseConversionError(
            f'{len(unmapped)} DAC-DETR release keys have no mapping (first: '
            f'{", ".join(unmapped[:3])}); is this the two-stage R50 / Swin-L release?')
    if model_cfg is not None:
        _check_against(out, _expected_state(model_cfg))
    backbone = 'Swin-L' if swin else 'R50'
    layers = sum(1 for k in state
                 if re.fullmatch(r'transformer\.decoder\.layers\.\d+\.norm1\.weight', k))
    report = ConversionReport(
        source='dac-detr',
        architecture=f'DAC-DETR two-stage Deformable DETR, {backbone}, {layers} decoder layers, '
                     f'{state["query_embed.weight"].shape[0]} queries',
        mapped=len(state) - len(dropped), dropped=dropped,
        notes=[f'class rows re-indexed: {RELEASE_CLASS_ROWS} COCO category ids -> '
               f'{num_classes} mmdet classes; the encoder branch keeps row 0 first (the '
               'proposal score)'])
    return out, report


def _check_against(out: Dict[str, torch.Tensor], expected: Dict[str, torch.Size]) -> None:
    missing = [k for k in expected if k not in out]
    extra = [k for k in out if k not in expected]
    if missing or extra:
        what = (f'{len(missing)} keys of the model missing (first: {", ".join(missing[:3])})'
                if missing else f'{len(extra)} keys the model lacks (first: '
                                f'{", ".join(extra[:3])})')
        raise ReleaseConversionError(f'DAC-DETR release checkpoint does not fit the config: '
                                     f'{what}; check the backbone and layer counts')
    for k, shape in expected.items():
        if out[k].shape != shape:
            raise ReleaseConversionError(
                f'DAC-DETR release checkpoint does not fit the config: "{k}" is '
                f'{tuple(out[k].shape)} in the checkpoint, {tuple(shape)} in the model')


DAC_DETR_FORMAT = register_format(ReleaseFormat(name='dac-detr', detect=detect, convert=convert,
                                                priority=10))
