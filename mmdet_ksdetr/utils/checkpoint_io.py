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


def load_weights_strictly(model, path: str, source: Optional[str] = None) -> Dict:
    """Load the checkpoint at ``path`` (the safe loader) into ``model`` strictly: a checkpoint
    that does not fit stops with :class:`CheckpointMismatchError` naming the keys (``source``
    names the file in the message; default ``checkpoint "path"``). Returns the loaded
    checkpoint (for its ``meta``)."""
    from mmdet_ksdetr.utils.checks import checkpoint_state_dict, load_checkpoint_safely
    ckpt = load_checkpoint_safely(path)
    state = checkpoint_state_dict(ckpt, path)
    check_state_dict_fits(model, state, source=source or f'checkpoint "{path}"')
    model.load_state_dict(state, strict=True)
    return ckpt


_FULL = {errno.ENOSPC, errno.EFBIG, getattr(errno, 'EDQUOT', errno.ENOSPC)}
_NO_PERMISSION = {errno.EACCES, errno.EPERM, errno.EROFS}


def _output_error(path: str, e: OSError) -> str:
    """One line that says why ``path`` could not be written and what to do."""
    folder = osp.dirname(osp.abspath(path))
    if e.errno in _FULL:
        return (f'cannot write "{path}": disk full / file too large ({e.strerror}); free space '
                f'in "{folder}" or write elsewhere')
    if e.errno in _NO_PERMISSION:
        return f'cannot write "{path}": no write permission in "{folder}"'
    if e.errno == errno.ENOENT and not osp.isdir(folder):
        return f'cannot write "{path}": output folder "{folder}" does not exist: create it first'
    return f'cannot write "{path}": {e.strerror or e}'


class OutputPathError(OSError):
    """An output file that cannot be written; the message says why in one line."""


def check_output_path(path: str, inputs: Iterable[str] = ()) -> str:
    """Refuse an output that is one of the ``inputs`` (same real path or same file through a
    link), is a folder, or sits in a missing folder. Returns ``path``."""
    out = osp.realpath(path)
    for p in inputs:
        if p and osp.exists(p) and (osp.realpath(p) == out or
                                    (osp.exists(path) and osp.samefile(p, path))):
            raise OutputPathError(f'output "{path}" is also an input: choose another file name '
                                  f'(writing it would destroy the input)')
    if osp.isdir(path):
        raise OutputPathError(f'output "{path}" is a folder: give a file name')
    folder = osp.dirname(osp.abspath(path))
    if not osp.isdir(folder):
        raise OutputPathError(f'output folder "{folder}" does not exist: create it first')
    return path


class _ErrorRecordingFile:
    """A file object that remembers the first ``OSError`` of a write: torch's zip writer turns
    it into ``RuntimeError: ... unexpected pos ...``, which would hide a full disk."""

    def __init__(self, f):
        self._f = f
        self.error: Optional[OSError] = None

    def write(self, data):
        try:
            return self._f.write(data)
        except OSError as e:
            self.error = self.error or e
            raise

    def __getattr__(self, name):
        return getattr(self._f, name)


@contextlib.contextmanager
def atomic_output(path: str, check: Optional[Callable[[str], None]] = None) -> Iterator[str]:
    """Yield a temporary file name beside ``path`` (``.<name>.*.tmp``); when the block
    succeeds, fsync that file, call ``check(temporary_path)`` if given (e.g. read it back),
    rename it to ``path`` and fsync the folder. On any failure ``path`` is untouched and the
    temporary file is removed (a ``kill -9`` inside the block can leave the temporary file,
    never a partial ``path``). OS errors become an :class:`OutputPathError` in one line."""
    folder = osp.dirname(osp.abspath(path))
    tmp: Optional[str] = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f'.{osp.basename(path)}.', suffix='.tmp', dir=folder)
        os.close(fd)
        os.chmod(tmp, _file_mode(path))  # mkstemp makes 0600; give the file the usual mode
        yield tmp
        with open(tmp, 'rb+') as f:
            os.fsync(f.fileno())
        if check is not None:
            check(tmp)
        os.replace(tmp, path)
        tmp = None
        _fsync_dir(folder)
    except OSError as e:
        raise OutputPathError(_output_error(path, e)) from e
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def atomic_write(path: str, write: Callable[[object], None], mode: str = 'wb',
                 check: Optional[Callable[[str], None]] = None) -> None:
    """Call ``write(file_object)`` on a temporary file beside ``path`` and move it into place
    (see :func:`atomic_output`); OS errors, also those torch hides behind a ``RuntimeError``,
    become an :class:`OutputPathError` in one line."""
    recorder: Optional[_ErrorRecordingFile] = None
    try:
        with atomic_output(path, check) as tmp:
            with open(tmp, mode) as f:
                recorder = _ErrorRecordingFile(f)
                write(recorder)
    except OutputPathError:
        raise
    except Exception as e:
        if recorder is not None and recorder.error is not None:
            raise OutputPathError(_output_error(path, recorder.error)) from e
        raise


def _file_mode(path: str) -> int:
    """Permissions for the new file: those of the file it replaces, else what ``open`` would
    give (``0o666`` less the umask) rather than ``mkstemp``'s private ``0o600``."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        umask = os.umask(0o022)
        os.umask(umask)
        return 0o666 & ~umask


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


def atomic_save(obj, path: str, check: Optional[Callable[[str], None]] = None) -> None:
    """``torch.save(obj, path)``, atomically (see :func:`atomic_write`)."""
    import torch
    atomic_write(path, lambda f: torch.save(obj, f), check=check)


def read_back_check(obj: Dict) -> Callable[[str], None]:
    """A ``check`` for :func:`atomic_save` of the dict ``obj``: the temporary file must load
    with :func:`~mmdet_ksdetr.utils.checks.load_checkpoint_safely` and hold ``obj``'s keys and
    ``state_dict`` keys, in order; otherwise the write fails (``cannot write ...``)."""

    def check(tmp: str) -> None:
        from mmdet_ksdetr.utils.checks import InputError, load_checkpoint_safely
        try:
            written = load_checkpoint_safely(tmp)
        except InputError as e:
            raise OSError(f'the written file does not read back ({e})') from e
        if not (isinstance(written, dict) and list(written) == list(obj) and
                list(written.get('state_dict', {})) == list(obj.get('state_dict', {}))):
            raise OSError('the written file does not read back with the same keys')

    return check
