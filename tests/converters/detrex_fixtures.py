"""The detrex release fixtures the converter tests share: the key sets (names and shapes as
detrex's own code builds them) in ``tests/data/releases/detrex_*.json``, and the tensors detrex
saves twice tied as it does."""
import json
import os.path as osp

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
