"""What a KS-DETR or DAC-DETR checkpoint is as a stock detector checkpoint, and which config
it loads into (used by ``tools/pth_transfer.py``).

* **KS-DETR** adds parameters only in its last encoder layer, all with a ``teacher_*`` name
  component (see :func:`~mmdet_ksdetr.models.ks_detr.ks_detr_mixin.is_ks_teacher_key`):
  ``self_attn.teacher_in_proj_{weight,bias}`` (triple / dual attention),
  ``self_attn.teacher_attention_weights.*`` and ``self_attn.teacher_value_proj.*`` (deformable
  triple attention) and ``teacher_input.fc.*`` (sMLP teacher input). Without them the state
  dict is the baseline detector's. The baseline config of
  ``<folder>/ks-<det>[-<variant>]_<rest>.py`` is ``<det>_<rest>.py`` in the same folder or the
  folder above (``configs/ks_detr/`` keeps the full-size baselines, ``configs/toy/`` the toy
  ones).
* **DAC-DETR** adds no parameter (its C-stream reruns the decoder layers' own weights without
  self-attention): a DAC checkpoint already is a stock DINO / Deformable DETR checkpoint. A DAC
  checkpoint is recognised by its training config (``meta``), as its keys are the stock ones.

The checkpoint's config is read from ``meta['experiment_name']`` (mmengine:
``<config name>_<YYYYMMDD_HHMMSS>``) and, for the model types, by pattern from
``meta['cfg']``; the config text is never executed.
"""
import glob
import os.path as osp
import re
from collections import OrderedDict

from mmdet_ksdetr.models.ks_detr.ks_detr_mixin import is_ks_teacher_key

#: name parts of KS ablation configs whose baseline is the plain ``<det>`` config
KS_VARIANTS = ('-dual-share-a', '-dual-share-v', '-mark')
#: DAC-only model keys (no parameters behind any of them)
DAC_ONLY_KEYS = ('decoder.share_first_self_attn', 'bbox_head.o2m_*', 'train_cfg.o2m_assigner')

_TIMESTAMP = re.compile(r'_\d{8}_\d{6}$')
_TYPE = re.compile(r"type\s*=\s*['\"]((?:KS|DAC)\w+)['\"]")


def split_ks_state_dict(state):
    """``(stock, dropped)``: the tensors of ``state`` without / with a KS ``teacher_*`` name."""
    stock, dropped = OrderedDict(), OrderedDict()
    for key, value in state.items():
        (dropped if is_ks_teacher_key(key) else stock)[key] = value
    return stock, dropped


def source_config_name(meta):
    """The training config's name (no ``.py``) from mmengine's ``meta['experiment_name']``;
    ``None`` when the checkpoint does not say."""
    name = (meta or {}).get('experiment_name')
    if not isinstance(name, str) or not name:
        return None
    return _TIMESTAMP.sub('', name)


def model_types(meta):
    """The KS / DAC class names the checkpoint's config text names (pattern match only)."""
    text = (meta or {}).get('cfg')
    return _TYPE.findall(text) if isinstance(text, str) else []


def is_dac_checkpoint(meta):
    """True when the checkpoint's config is a DAC-DETR one (by model type or config name)."""
    name = source_config_name(meta) or ''
    return name.startswith('dac-') or any(t.startswith('DAC') for t in model_types(meta))


def find_config(name, configs_root):
    """Path of ``<name>.py`` anywhere under ``configs_root`` (``None`` if absent)."""
    hits = sorted(glob.glob(osp.join(configs_root, '**', name + '.py'), recursive=True))
    return hits[0] if hits else None


def ks_baseline_config(ks_config_path):
    """The baseline config file of a KS config file by the naming rule (``None`` if absent)."""
    folder, base = osp.split(ks_config_path)
    if not base.startswith('ks-') or '_' not in base:
        return None
    algo, rest = base[len('ks-'):].split('_', 1)
    for variant in KS_VARIANTS:
        if algo.endswith(variant):
            algo = algo[:-len(variant)]
    for where in (folder, osp.dirname(folder)):
        candidate = osp.join(where, f'{algo}_{rest}')
        if osp.isfile(candidate):
            return candidate
    return None


def stock_type_rule(types, prefix):
    """How the stock config differs from the KS / DAC one, as one phrase."""
    renames = [f'{t} -> {t[len(prefix):]}' for t in dict.fromkeys(types) if t.startswith(prefix)]
    renames = ', '.join(renames) or f'every {prefix}<Name> type -> <Name>'
    dropped = 'model.ks_cfg' if prefix == 'KS' else ', '.join(DAC_ONLY_KEYS)
    return f'the same config with {renames} and {dropped} removed'


def describe_stock_config(meta, configs_root, kind):
    """Where the converted ``kind`` ('ks' or 'dac') checkpoint loads: a config path (relative
    to the working directory when inside it) or the rule to write that config."""
    name = source_config_name(meta)
    prefix = 'KS' if kind == 'ks' else 'DAC'
    rule = stock_type_rule(model_types(meta), prefix)
    path = find_config(name, configs_root) if name else None
    if kind == 'ks' and path:
        baseline = ks_baseline_config(path)
        if baseline:
            rel = osp.relpath(baseline)
            return baseline if rel.startswith('..') else rel
    where = f'"{name}.py"' if name else 'its training config'
    note = '; its header comment names the baseline' if path and kind == 'dac' else ''
    return f'{rule} ({where}{note})'
