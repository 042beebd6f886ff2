"""Up-front checks of what a user hands the tools, each failing with a message that says what
to fix instead of a traceback from deep inside mmengine."""
import errno
import os
import os.path as osp
import pickle
import re
import zipfile

import torch

from mmdet_ksdetr.utils.errors import InputError  # noqa: F401  (imported from here by tools)
from mmdet_ksdetr.utils.pickle_globals import refused_global


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


def code_refusal(what, culprit):
    """The one-line refusal of a file whose unpickling would call ``culprit`` (a global such
    as ``posix.system``)."""
    return (f'{what} refused: the file would run code ({culprit}). Only tensors, plain '
            f'containers and mmengine checkpoint data are loaded; do not use a file from a '
            f'source you do not trust')


def _ensure_weights_only_types():
    """mmengine's data-only checkpoint types on torch's allow-list (``import mmdet_ksdetr``
    already does it; repeated here so the loader never depends on import order)."""
    from mmdet_ksdetr.compat import allow_mmengine_checkpoint_types
    allow_mmengine_checkpoint_types()


def load_checkpoint_safely(path, mmap=True):
    """Load a checkpoint with ``torch.load(..., weights_only=True)``: tensors, plain containers
    and mmengine's data-only types (see :mod:`mmdet_ksdetr.compat`), never code.

    ``weights_only=True`` is passed explicitly, so ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` (which
    only overrides an *unset* argument) cannot switch the check off. Raises
    :class:`InputError` in one line: ``checkpoint "P" does not exist``, ``cannot read
    checkpoint "P": ...``, ``checkpoint "P" refused: the file would run code (<global>) ...``
    or ``"P" is not a PyTorch checkpoint (...)``. An ``http(s)://`` URL is downloaded once into
    torch.hub's checkpoint folder (``$TORCH_HOME/hub/checkpoints``) and loaded from there the
    same way."""
    if is_url(path):
        path = download_checkpoint(path)
    if not osp.isfile(path):
        raise InputError(f'checkpoint "{path}" does not exist')
    _ensure_weights_only_types()
    try:
        mmap = mmap and zipfile.is_zipfile(path)  # legacy (non-zip) files cannot be mmapped
        return torch.serialization.load(path, map_location='cpu', weights_only=True,
                                        mmap=mmap)
    except Exception as e:  # noqa: BLE001  (any failure: say which, in one line)
        raise InputError(_load_error_message(path, e)) from e


def is_url(path) -> bool:
    """An ``http://`` or ``https://`` checkpoint address."""
    return str(path).startswith(('http://', 'https://'))


_URL_HASH = re.compile(r'-([0-9a-f]{8,64})\.[A-Za-z0-9]+$')


def url_hash_prefix(url: str):
    """The sha256 prefix an OpenMMLab-style URL names (``..._20221202_182705-55b2bba2.pth``:
    the first hex digits of the file's sha256), or None."""
    from urllib.parse import urlparse
    match = _URL_HASH.search(osp.basename(urlparse(url).path))
    return match.group(1) if match else None


def url_cache_path(url: str) -> str:
    """Where ``url`` is cached: ``$TORCH_HOME/hub/checkpoints/<sha256(URL)[:16]>-<basename>``.
    The prefix comes from the whole URL, so ``http://h/a/model.pth`` and
    ``http://h/b/model.pth`` never share a file."""
    import hashlib
    from urllib.parse import urlparse

    import torch.hub
    name = osp.basename(urlparse(url).path) or 'checkpoint.pth'
    key = hashlib.sha256(url.encode('utf-8')).hexdigest()[:16]
    return osp.join(torch.hub.get_dir(), 'checkpoints', f'{key}-{name}')


def download_checkpoint(url: str) -> str:
    """The local copy of ``url`` (see :func:`url_cache_path`), downloaded when missing. torch
    writes a temporary file and renames it, so a broken download leaves no file; when the URL
    names a hash (``-<8 hex>.pth``), a file whose sha256 does not start with it is refused and
    not kept."""
    import torch.hub
    local = url_cache_path(url)
    if not osp.isfile(local):
        os.makedirs(osp.dirname(local), exist_ok=True)
        expected = url_hash_prefix(url)
        try:
            torch.hub.download_url_to_file(url, local, hash_prefix=expected, progress=False)
        except Exception as e:  # noqa: BLE001  (HTTP, DNS, TLS, disk: one line each)
            if expected and 'invalid hash value' in str(e):
                raise InputError(f'checkpoint "{url}" is corrupt or not the published file: '
                                 f'its sha256 does not start with {expected} (the hash in its '
                                 f'name); nothing was cached') from e
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise InputError(f'cannot download checkpoint "{url}": {first}') from e
    return local


_UNREADABLE = (errno.EACCES, errno.EPERM, errno.EIO, errno.EISDIR)


def _load_error_message(path, e):
    """Why ``path`` did not load: unreadable, refused (would run code) or not a checkpoint."""
    if isinstance(e, OSError) and e.errno in _UNREADABLE:
        return f'cannot read checkpoint "{path}": {e.strerror or e}'
    culprit = refused_global(path, e)
    if culprit:
        return code_refusal(f'checkpoint "{path}"', culprit)
    if isinstance(e, pickle.UnpicklingError):
        return f'"{path}" is not a PyTorch checkpoint (it does not unpickle)'
    first = str(e).splitlines()[0] if str(e) else 'empty file'
    return f'"{path}" is not a PyTorch checkpoint ({type(e).__name__}: {first})'


def checkpoint_state_dict(ckpt, path):
    """The parameters of a loaded checkpoint: its ``state_dict`` (mmengine) or the plain
    mapping of parameter names to tensors it is; an InputError for anything else."""
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise InputError(f'"{path}" is a torch file but not a model checkpoint: expected a dict '
                         f'with a "state_dict" of parameter tensors')
    return state


def check_checkpoint(path):
    """Check that ``path`` is a model checkpoint: a dict with ``state_dict`` (mmengine) or a
    plain mapping of parameter names to tensors. Returns the path."""
    checkpoint_state_dict(load_checkpoint_safely(path), path)
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


def check_data_paths(cfg, loaders=('train_dataloader', 'val_dataloader', 'test_dataloader'),
                     check_images=True):
    """Check that each named dataloader's data root and annotation file exist, then (COCO
    json) warn about annotations the config's classes drop and boxes mmdet drops; missing
    image files, images that do not decode (unless ``check_images`` is False), an annotation
    file none of whose annotations is in the classes or with no valid box are errors (see
    :func:`~mmdet_ksdetr.utils.data_checks.check_coco_annotations`)."""
    from mmdet_ksdetr.utils.data_checks import check_coco_annotations, missing_data_hint
    for name in loaders:
        loader = cfg.get(name)
        if not loader:
            continue
        for ds in _iter_datasets(loader.get('dataset')):
            root = ds.get('data_root') or ''
            if root and not osp.isdir(root):
                raise InputError(f'{name}: data root "{root}" does not exist. '
                                 f'{missing_data_hint(ds, root)}')
            ann = ds.get('ann_file')
            if ann:
                ann_path = ann if osp.isabs(ann) or not root else osp.join(root, ann)
                if not osp.isfile(ann_path):
                    raise InputError(f'{name}: annotation file "{ann_path}" does not exist. '
                                     f'{missing_data_hint(ds, root)}')
                check_coco_annotations(name, ds, ann_path, check_images)


def _load_for_mmengine(path):
    """What mmengine's ``CheckpointLoader`` schemes load through (``PretrainedInit``,
    ``load_checkpoint``, ``init_cfg`` of every backbone): :func:`load_checkpoint_safely`."""
    return load_checkpoint_safely(path, mmap=False)


def route_mmengine_checkpoint_loading():
    """Route mmengine's checkpoint schemes (local files, URLs, model-zoo names) through
    :func:`load_checkpoint_safely` (done when this module is imported)."""
    from mmdet_ksdetr.compat import route_mmengine_checkpoint_loading as route
    return route(_load_for_mmengine)


route_mmengine_checkpoint_loading()


_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_WRITE_ERRNOS = _FULL_ERRNOS + (errno.EROFS, errno.EACCES, errno.EPERM)


def _chain(exc):
    seen = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def describe_write_error(exc):
    """One line for a run that stopped because a file could not be written (disk full, quota,
    read-only or forbidden work dir), found anywhere in ``exc``'s chain of causes; None for any
    other error (its traceback is then the useful answer)."""
    for e in _chain(exc):  # checkpoint_io.OutputPathError (not imported: it imports us)
        if any(c.__name__ == 'OutputPathError' for c in type(e).__mro__):
            return str(e)  # already one line, naming the file
    for e in _chain(exc):
        if isinstance(e, OSError) and e.errno in _WRITE_ERRNOS:
            where = f' "{e.filename}"' if e.filename else ''
            if e.errno in _FULL_ERRNOS:
                return (f'cannot write{where}: disk full / quota exceeded ({e.strerror}); free '
                        f'space or give another --work-dir')
            return f'cannot write{where}: {e.strerror}; give a writable --work-dir'
    return None
