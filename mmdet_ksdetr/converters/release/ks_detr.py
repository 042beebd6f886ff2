"""The ``ks-detr`` release format: edocanonymous/KS-DETR checkpoints (detrex layout).

A KS-DETR checkpoint is its baseline detector's (detrex DAB-DETR, Conditional-DETR, DN-DETR,
Deformable-DETR or DN-Deformable-DETR) plus teacher-stream tensors that only training uses
(the teacher input is built from the ground-truth boxes, so inference never runs it):

* ``ksgt.*``: the sMLP that builds the teacher input (``ksgt.smlp_module...``);
* the last encoder layer's self-attention ``in_proj_weight`` / ``in_proj_bias`` hold ``6E``
  rows (student q, k, v then teacher q, k, v) where the baseline has ``3E``: the first ``3E``
  are the student's, the rest are dropped;
* deformable models: ``attentions.0.attention_weights_teacher.*`` and
  ``attentions.0.value_proj_teacher.*`` of the last encoder layer.

The student part is converted by the baseline's row of the ``detrex`` format's architecture
table (:data:`~.detrex.ARCHITECTURES`) and loads strictly into the stock
config (``configs/ks_detr/release/``); the report lists every dropped tensor with its reason.
Detected by those KS-only keys; it is tried before ``detrex``.
"""
import re
from typing import Dict, Tuple

import torch

from mmdet_ksdetr.converters.release.api import (ConversionReport, ReleaseConversionError,
                                                 ReleaseFormat, register_format)
from mmdet_ksdetr.converters.release.detrex import convert_architecture

__all__ = ['detect_ks_detr', 'convert_ks_detr', 'split_ks_teacher', 'KS_DETR_FORMAT']

SOURCE = 'ks-detr'
_WHY = 'KS teacher stream (training only: its input is built from the GT boxes)'
_TEACHER_DEFORM = re.compile(r'\.attentions\.0\.(attention_weights|value_proj|sampling_offsets|'
                             r'output_proj)_teacher\.')
_IN_PROJ = re.compile(r'^transformer\.encoder\.layers\.(\d+)\.attentions\.0\.attn\.'
                      r'in_proj_(weight|bias)$')


def _embed_dim(state: Dict[str, torch.Tensor]) -> int:
    w = state.get('class_embed.weight')
    if w is None:
        w = next(v for k, v in state.items() if k.startswith('class_embed.') and
                 k.endswith('.weight'))
    return w.shape[1]


def detect_ks_detr(state: Dict[str, torch.Tensor]) -> bool:
    """KS-only keys: the sMLP ``ksgt.*``, deformable teacher projections, or a 6E in_proj."""
    if any(k.startswith('ksgt.') for k in state):
        return True
    if any(_TEACHER_DEFORM.search(k) for k in state):
        return True
    try:
        dim = _embed_dim(state)
    except StopIteration:
        return False
    return any(_IN_PROJ.match(k) and v.shape[0] > 3 * dim for k, v in state.items())


def split_ks_teacher(state: Dict[str, torch.Tensor], report: ConversionReport
                     ) -> Dict[str, torch.Tensor]:
    """The baseline (student) tensors of a KS checkpoint; the teacher-only ones go to
    ``report.dropped`` with their reason."""
    dim = _embed_dim(state)
    student = {}
    for key, value in state.items():
        if key.startswith('ksgt.') or _TEACHER_DEFORM.search(key):
            report.dropped[key] = _WHY
            continue
        m = _IN_PROJ.match(key)
        if m and value.shape[0] != 3 * dim:
            if value.shape[0] not in (4 * dim, 5 * dim, 6 * dim):
                raise ReleaseConversionError(
                    f'{SOURCE} checkpoint: {key} has {value.shape[0]} rows, expected 3x, 4x, 5x '
                    f'or 6x the embed dim {dim}')
            student[key] = value[:3 * dim].clone()
            report.dropped[f'{key}[{3 * dim}:{value.shape[0]}]'] = \
                _WHY + ': rows after the student q, k, v'
            continue
        student[key] = value
    return student


def convert_ks_detr(state: Dict[str, torch.Tensor], cfg=None
                    ) -> Tuple[Dict[str, torch.Tensor], ConversionReport]:
    """KS-DETR release state dict -> the stock baseline detector's mmdet state dict."""
    report = ConversionReport(source=SOURCE)
    student = split_ks_teacher(state, report)
    new, report = convert_architecture(student, cfg, source=SOURCE, prefix='KS-',
                                       report=report)
    report.notes.append('inference model: the stock baseline detector; the teacher streams are '
                        'dropped (listed in dropped)')
    return new, report


KS_DETR_FORMAT = register_format(ReleaseFormat(
    name=SOURCE, detect=detect_ks_detr, convert=convert_ks_detr, priority=20))
