"""Writing and fitting checkpoints without losing data or giving a silent wrong result.

* :func:`atomic_save` writes a file so that a crash (``kill -9``, full disk) never leaves a
  partial file under the final name: temporary file in the same folder, flush + fsync, rename.
* :func:`check_state_dict_fits` compares a state dict with a model and raises
  :class:`CheckpointMismatchError` that lists missing / unexpected / mis-shaped keys.

Loading lives in :func:`mmdet_ksdetr.utils.checks.load_checkpoint_safely` (``weights_only``).
"""
import contextlib
import errno
import os
import os.path as osp
import tempfile
from typing import Callable, Dict, Iterable, Iterator, List, Optional


class CheckpointMismatchError(ValueError):
    """A checkpoint that does not fit the model; the message lists the keys."""


def _listing(keys: List[str], limit: int = 5) -> str:
    shown = ', '.join(keys[:limit])
    return f'{len(keys)} ({shown}{", ..." if len(keys) > limit else ""})'


def state_dict_mismatch(model_state: Dict, ckpt_state: Dict) -> Dict[str, List[str]]:
    """``{'missing': [...], 'unexpected': [...], 'mis_shaped': ['key: ckpt vs model', ...]}``."""
    missing = sorted(k for k in model_state if k not in ckpt_state)
    unexpected = sorted(k for k in ckpt_state if k not in model_state)
    mis_shaped = sorted(
        f'{k}: {tuple(ckpt_state[k].shape)} in the checkpoint vs {tuple(v.shape)} in the model'
        for k, v in model_state.items()
        if k in ckpt_state and hasattr(ckpt_state[k], 'shape') and hasattr(v, 'shape')
        and tuple(ckpt_state[k].shape) != tuple(v.shape))
    return dict(missing=missing, unexpected=unexpected, mis_shaped=mis_shaped)


def describe_mismatch(model, ckpt_state: Dict, ignore: Iterable[str] = ()) -> str:
    """One line listing the keys of ``ckpt_state`` that do not fit ``model`` (first few of each
    kind + counts); ``''`` when it fits. Keys starting with a prefix in ``ignore`` are skipped."""
    ignore = tuple(ignore)
    model_state = {k: v for k, v in model.state_dict().items() if not k.startswith(ignore)}
    ckpt_state = {k: v for k, v in ckpt_state.items() if not k.startswith(ignore)}
    bad = state_dict_mismatch(model_state, ckpt_state)
    return '; '.join(f'{name.replace("_", "-")} keys: {_listing(keys)}'
                     for name, keys in bad.items() if keys)


def check_state_dict_fits(model, ckpt_state: Dict, source: str = 'checkpoint',
                          ignore: Iterable[str] = ()) -> None:
    """Raise :class:`CheckpointMismatchError` unless ``ckpt_state`` has exactly the model's keys
    with the model's shapes (keys starting with a prefix in ``ignore`` are not compared)."""
    mismatch = describe_mismatch(model, ckpt_state, ignore)
    if mismatch:
        raise CheckpointMismatchError(
            f'{source} does not fit the model ({type(model).__name__}): {mismatch}. Use the '
            f'config the checkpoint was trained with, or opt in to non-strict loading')


def _output_error(path: str, e: OSError) -> str:
    folder = osp.dirname(osp.abspath(path))
    if e.errno == errno.ENOSPC:
        return f'cannot write "{path}": the disk holding "{folder}" is full'
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f'cannot write "{path}": no write permission in "{folder}"'
    return f'cannot write "{path}": {e.strerror or e}'


class OutputPathError(OSError):
    """An output file that cannot be written; the message says why in one line."""


def check_output_path(path: str, inputs: Iterable[str] = ()) -> str:
    """Refuse an output that is one of the ``inputs`` or sits in a missing folder."""
    out = osp.realpath(path)
    for p in inputs:
        if p and osp.exists(p) and osp.realpath(p) == out:
            raise OutputPathError(f'output "{path}" is also an input: choose another file name '
                                  f'(writing it would destroy the input)')
    folder = osp.dirname(osp.abspath(path))
    if not osp.isdir(folder):
        raise OutputPathError(f'output folder "{folder}" does not exist: create it first')
    return path


@contextlib.contextmanager
def atomic_output(path: str) -> Iterator[str]:
    """Yield a temporary file name beside ``path``; when the block succeeds, fsync that file and
    rename it to ``path`` (then fsync the folder). On any failure, or a ``kill -9`` inside the
    block, ``path`` is untouched: a crash leaves at most a ``.<name>.*.tmp`` file. OS errors
    become an :class:`OutputPathError` that says why in one line."""
    folder = osp.dirname(osp.abspath(path))
    tmp: Optional[str] = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f'.{osp.basename(path)}.', suffix='.tmp', dir=folder)
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
        yield tmp
        with open(tmp, 'rb+') as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
        _fsync_dir(folder)
    except OSError as e:
        raise OutputPathError(_output_error(path, e)) from e
    finally:
        if tmp is not None and osp.exists(tmp):
            os.unlink(tmp)


def atomic_write(path: str, write: Callable[[object], None], mode: str = 'wb') -> None:
    """Call ``write(file_object)`` on a temporary file beside ``path``, fsync it, then rename it
    to ``path`` (see :func:`atomic_output`)."""
    with atomic_output(path) as tmp:
        with open(tmp, mode) as f:
            write(f)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_save(obj, path: str) -> None:
    """``torch.save(obj, path)``, atomically (see :func:`atomic_write`)."""
    import torch
    atomic_write(path, lambda f: torch.save(obj, f))
