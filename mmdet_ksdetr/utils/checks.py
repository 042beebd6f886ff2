"""Up-front checks of what a user hands the tools, each failing with a message that says what
to fix instead of a traceback from deep inside mmengine."""
import os.path as osp
import pickle
import zipfile

import torch


class InputError(ValueError):
    """Bad user input (path, checkpoint, data root); the message says what to fix."""


def resolve_config_path(path):
    """``mmdet::dir/file.py`` (a config shipped inside an installed package, as in ``_base_``)
    to its file path; other paths are returned unchanged."""
    if '::' not in path:
        return path
    package, rel = path.split('::', 1)
    try:
        from mmengine.utils import get_installed_path
        root = get_installed_path(package)
    except Exception as e:  # noqa: BLE001
        raise InputError(f'config "{path}": package "{package}" is not installed') from e
    return osp.join(root, '.mim', 'configs', rel)


def check_config_path(path):
    """Return the config's file path (``pkg::rel`` resolved); a clear error if it is missing."""
    path = resolve_config_path(path)
    if not osp.isfile(path):
        raise InputError(f'config file "{path}" does not exist: give the path of a .py config, '
                         f'e.g. configs/toy/deformable-detr_tiny-r18_1xb2-12e_toy.py')
    if not path.endswith('.py'):
        raise InputError(f'config file "{path}" is not a Python config (.py)')
    return path


def load_checkpoint_safely(path, mmap=True):
    """``torch.load`` with ``weights_only=True``; raises :class:`InputError` on anything that is
    not a readable PyTorch checkpoint. Never unpickles arbitrary objects."""
    if not osp.isfile(path):
        raise InputError(f'checkpoint "{path}" does not exist')
    mmap = mmap and zipfile.is_zipfile(path)  # legacy (non-zip) files cannot be mmapped
    try:
        return torch.load(path, map_location='cpu', weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:
        unsupported = [ln.strip() for ln in str(e).splitlines() if 'Unsupported global' in ln]
        if not unsupported:
            raise InputError(f'"{path}" is not a PyTorch checkpoint (it does not unpickle)') from e
        raise InputError(
            f'checkpoint "{path}" holds objects that are not allowed under torch.load('
            f'weights_only=True): {unsupported[0]}. Only checkpoints written by mmengine or '
            f'torch.save of tensors and plain containers are accepted; an untrusted file must '
            f'not run code') from e
    except Exception as e:  # noqa: BLE001  (any parse failure means: not a checkpoint)
        raise InputError(f'"{path}" is not a PyTorch checkpoint ({type(e).__name__}: '
                         f'{str(e).splitlines()[0] if str(e) else "empty file"})') from e


def check_checkpoint(path):
    """Check that ``path`` is a model checkpoint: a dict with ``state_dict`` (mmengine) or a
    plain mapping of parameter names to tensors. Returns the path."""
    ckpt = load_checkpoint_safely(path)
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise InputError(f'"{path}" is a torch file but not a model checkpoint: expected a dict '
                         f'with a "state_dict" of parameter tensors')
    return path


def _iter_datasets(dataset):
    if not isinstance(dataset, dict):
        return
    if 'datasets' in dataset:  # ConcatDataset
        for d in dataset['datasets']:
            yield from _iter_datasets(d)
    elif 'dataset' in dataset:  # RepeatDataset / ClassBalancedDataset
        yield from _iter_datasets(dataset['dataset'])
    else:
        yield dataset


def check_data_paths(cfg, loaders=('train_dataloader', 'val_dataloader', 'test_dataloader')):
    """Check that each named dataloader's data root and annotation file exist."""
    for name in loaders:
        loader = cfg.get(name)
        if not loader:
            continue
        for ds in _iter_datasets(loader.get('dataset')):
            root = ds.get('data_root') or ''
            if root and not osp.isdir(root):
                raise InputError(
                    f'{name}: data root "{root}" does not exist. Create it (for the toy set: '
                    f'python tools/misc/make_toy_coco.py --out {root.rstrip("/")}) or point the '
                    f'config at your data with --cfg-options {name}.dataset.data_root=PATH')
            ann = ds.get('ann_file')
            if ann:
                ann_path = ann if osp.isabs(ann) or not root else osp.join(root, ann)
                if not osp.isfile(ann_path):
                    raise InputError(f'{name}: annotation file "{ann_path}" does not exist')
