"""The detrex release fixtures the converter tests share: the key sets (names and shapes as
detrex's own code builds them) in ``tests/data/releases/detrex_*.json``, and the tensors detrex
saves twice tied as it does."""
import json
import math
import os.path as osp

import torch

DATA = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'data', 'releases')


def release_shapes(name):
    """Key -> shape of the release fixture ``detrex_<name>.json``."""
    with open(osp.join(DATA, f'detrex_{name}.json')) as f:
        return {k: tuple(v) for k, v in json.load(f).items()}


def link_heads(state):
    """Tie the tensors detrex saves twice as it does: the decoder's links to the heads and,
    without box refinement, one head shared by every decoder layer."""
    shared = 'transformer.decoder.bbox_embed.0.layers.0.weight' not in state and \
        'transformer.decoder.class_embed.0.weight' not in state
    for key in state:
        if key.startswith(('transformer.decoder.class_embed.',
                           'transformer.decoder.bbox_embed.')):
            state[key] = state[key[len('transformer.decoder.'):]]
        elif shared and key.startswith(('class_embed.', 'bbox_embed.')):
            parts = key.split('.')
            state[key] = state['.'.join([parts[0], '0'] + parts[2:])]
    return state


def shrunk_shapes(name):
    """The full release's R50 backbone with the shrunk transformer of
    ``detrex_<name>_shrunk-e1d2q20f64.json`` (1 encoder, 2 decoder layers, 20 queries, FFN 64)."""
    shapes = {k: v for k, v in release_shapes(name).items() if k.startswith('backbone.')}
    shapes.update(release_shapes(f'{name}_shrunk-e1d2q20f64'))
    return shapes


def scaled_random(shapes, seed):
    """Seeded values that keep activations in range: weights ~ N(0, 1/fan_in), norm scales
    ~ 1 + N(0, 0.2), positive running variances."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for k, shape in shapes.items():
        if k.endswith('running_var'):
            state[k] = torch.rand(shape, generator=g) + 0.5
        elif len(shape) > 1:
            state[k] = torch.randn(shape, generator=g) / math.sqrt(math.prod(shape[1:]))
        elif 'norm' in k and k.endswith('weight'):
            state[k] = 1 + 0.2 * torch.randn(shape, generator=g)
        else:
            state[k] = 0.2 * torch.randn(shape, generator=g)
    return link_heads(state)
