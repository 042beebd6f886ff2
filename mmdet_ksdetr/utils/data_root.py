"""One ``data_root`` key that moves all of a config's data.

mmdet configs (ours and the stock ones) define a top-level ``data_root`` and build every path
from it when the file is parsed: each dataloader's ``dataset.data_root`` and the evaluators'
``ann_file = data_root + 'annotations/...'``. ``--cfg-options data_root=PATH`` is merged after
parsing, so on its own it changes only the top-level key. :func:`merge_cfg_options` (what the
tools call instead of ``cfg.merge_from_dict``) first moves every path under the config's own
``data_root`` to the new root, then merges the options, so an explicit per-loader key given on
the same command line still wins.
"""
import os.path as osp

from mmdet_ksdetr.utils.checks import InputError

DATA_KEYS = ('train_dataloader', 'val_dataloader', 'test_dataloader', 'val_evaluator',
             'test_evaluator')


def _under(path, root):
    """``path`` relative to ``root`` ('' for the root itself), or None if it is not under it."""
    norm_root = osp.normpath(root)
    norm = osp.normpath(path)
    if norm == norm_root:
        return ''
    prefix = norm_root.rstrip('/') + '/'
    return norm[len(prefix):] if norm.startswith(prefix) else None


def _reroot(node, old, new):
    """A copy of ``node`` (dicts / lists / strings) with every path under ``old`` moved to
    ``new``; ``data_root`` strings keep their trailing ``/`` style."""
    if isinstance(node, dict):
        return type(node)({k: _reroot(v, old, new) for k, v in node.items()})
    if isinstance(node, (list, tuple)):
        return type(node)(_reroot(v, old, new) for v in node)
    if isinstance(node, str):
        rel = _under(node, old)
        if rel is not None:
            return osp.join(new, rel) if rel else new
    return node


def apply_data_root(cfg, data_root):
    """Move every path of ``cfg``'s dataloaders and evaluators that lies under its top-level
    ``data_root`` to ``data_root``, and set the top-level key (in place; returns ``cfg``).

    Raises :class:`InputError` when the config has no top-level ``data_root`` to move from."""
    old = cfg.get('data_root')
    if not isinstance(old, str) or not old.strip('./'):
        raise InputError(f'data_root={data_root}: the config has no top-level data_root to '
                         f'move; set each dataloader\'s dataset.data_root and the evaluators\' '
                         f'ann_file instead')
    if not isinstance(data_root, str) or not data_root:
        raise InputError(f'data_root={data_root!r}: give a folder path')
    for key in DATA_KEYS:
        if cfg.get(key) is not None:
            cfg[key] = _reroot(cfg[key], old, data_root)
    cfg['data_root'] = data_root
    return cfg


def merge_cfg_options(cfg, options):
    """``cfg.merge_from_dict(options)`` where ``data_root=PATH`` moves all the config's data
    (see :func:`apply_data_root`) before the other options are merged."""
    if not options:
        return cfg
    if 'data_root' in options:
        apply_data_root(cfg, options['data_root'])
    cfg.merge_from_dict(options)
    return cfg
