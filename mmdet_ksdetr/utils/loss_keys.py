"""mmdet's naming of per-decoder-layer losses: no prefix for the last layer, ``d{l}.`` for the
auxiliary layers before it (``loss_cls``, ``d0.loss_cls``, ...)."""
from typing import Dict, Iterable, Sequence


def layer_prefix(layer: int, num_layers: int) -> str:
    """Loss-key prefix of decoder layer ``layer``: '' for the last, ``d{layer}.`` before."""
    return '' if layer == num_layers - 1 else f'd{layer}.'


def per_layer_losses(names: Sequence[str], layers: Iterable[Sequence], num_layers: int,
                     suffix: str = '') -> Dict:
    """``{prefix + name + suffix: value}`` layer by layer, where ``layers`` yields one tuple of
    values (aligned with ``names``) per decoder layer."""
    out = {}
    for layer, values in enumerate(layers):
        prefix = layer_prefix(layer, num_layers)
        for name, value in zip(names, values):
            out[f'{prefix}{name}{suffix}'] = value
    return out
