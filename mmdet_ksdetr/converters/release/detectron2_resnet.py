"""detectron2's ResNet (the backbone of detrex and KS-DETR releases) -> mmdet's ``ResNet``.

detectron2 names a ResNet-50/101 ``stem.conv1`` (+ ``.norm``), then ``res2`` ... ``res5`` with
blocks ``conv1..conv3`` (each with its ``.norm``) and ``shortcut`` (+ ``.norm``); its
FrozenBatchNorm has ``weight, bias, running_mean, running_var`` and no
``num_batches_tracked``. mmdet names the same tensors ``conv1`` / ``bn1``, ``layer1`` ...
``layer4``, ``convK`` / ``bnK`` and ``downsample.0`` / ``downsample.1``. The releases use
``stride_in_1x1=False`` (stride in the 3x3 conv), which is mmdet's ``style='pytorch'``.
"""
import re
from typing import Dict, Set, Tuple

import torch

__all__ = ['convert_detectron2_resnet', 'is_detectron2_resnet']

_BN_TENSORS = ('weight', 'bias', 'running_mean', 'running_var')
_STEM = re.compile(r'^stem\.conv1\.(weight|norm\.(weight|bias|running_mean|running_var))$')
_BLOCK = re.compile(r'^res([2-5])\.(\d+)\.(conv[123]|shortcut)\.'
                    r'(weight|norm\.(?:weight|bias|running_mean|running_var))$')


def is_detectron2_resnet(state: Dict[str, torch.Tensor], prefix: str = 'backbone.') -> bool:
    """Whether ``state`` holds a detectron2 ResNet under ``prefix``."""
    return f'{prefix}stem.conv1.weight' in state and f'{prefix}res2.0.conv1.weight' in state


def _mmdet_name(name: str) -> str:
    """The mmdet ResNet name of one detectron2 ResNet tensor name (without prefixes)."""
    m = _STEM.match(name)
    if m:
        tail = m.group(1)
        return 'conv1.weight' if tail == 'weight' else 'bn1.' + tail[len('norm.'):]
    m = _BLOCK.match(name)
    if not m:
        raise KeyError(name)
    stage, block, conv, tail = m.groups()
    layer = f'layer{int(stage) - 1}.{block}'
    if conv == 'shortcut':
        return f'{layer}.downsample.0.weight' if tail == 'weight' else \
            f'{layer}.downsample.1.{tail[len("norm."):]}'
    k = conv[-1]
    return f'{layer}.conv{k}.weight' if tail == 'weight' else f'{layer}.bn{k}.{tail[5:]}'


def convert_detectron2_resnet(state: Dict[str, torch.Tensor], src_prefix: str = 'backbone.',
                              dst_prefix: str = 'backbone.'
                              ) -> Tuple[Dict[str, torch.Tensor], Set[str]]:
    """Map every ``src_prefix`` ResNet tensor of ``state`` to its mmdet name.

    Returns:
        tuple: ``(converted, consumed)``: the mmdet-named tensors (with a zero
        ``num_batches_tracked`` for each BatchNorm, which mmdet's ResNet has and detectron2's
        FrozenBatchNorm has not) and the set of source keys used.

    Raises:
        KeyError: a key under ``src_prefix`` that is not a ResNet tensor (its name).
    """
    converted, consumed = {}, set()
    for key, value in state.items():
        if not key.startswith(src_prefix):
            continue
        new = _mmdet_name(key[len(src_prefix):])
        converted[dst_prefix + new] = value
        consumed.add(key)
        if new.endswith('.running_var'):
            converted[dst_prefix + new[:-len('running_var')] + 'num_batches_tracked'] = \
                torch.tensor(0, dtype=torch.long)
    return converted, consumed
