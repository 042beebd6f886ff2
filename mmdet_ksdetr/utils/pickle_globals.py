"""Which global (function or class) a checkpoint asks the unpickler for, read statically.

``torch.load(weights_only=True)`` refuses a checkpoint that names a global outside its
allow-list, but words the refusal differently from release to release ("Unsupported global:
GLOBAL eval ...", "Trying to load unsupported GLOBAL posix.system whose module posix is
blocked", ...). :func:`refused_global` finds the global itself by disassembling the pickle with
:mod:`pickletools` (nothing is executed) and only falls back to torch's message, so the loader
can say which global a hostile file would have run whatever torch's wording.
"""
import _compat_pickle
import pickletools
import re
import zipfile
from typing import Iterable, Iterator, List, Optional, Set

_STRING_OPS = {'STRING', 'BINSTRING', 'SHORT_BINSTRING', 'UNICODE', 'BINUNICODE',
               'SHORT_BINUNICODE', 'BINUNICODE8'}
_MEMO_PUT_OPS = {'PUT', 'BINPUT', 'LONG_BINPUT'}
_MEMO_GET_OPS = {'GET', 'BINGET', 'LONG_BINGET'}
_MAX_PICKLES = 6  # a legacy (non-zip) torch file is a few pickles, then raw tensor bytes
_MESSAGE_PATTERNS = (re.compile(r'GLOBAL\s+([A-Za-z_][\w.]*\w)'),
                     re.compile(r"but got <class '([A-Za-z_][\w.]*\w)'>"))


def python3_name(module: str, name: str) -> str:
    """``module.name`` as Python 3 resolves it (protocol-2 pickles write ``__builtin__`` for
    ``builtins``, ``commands`` for ``subprocess``, ...)."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    else:
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    return f'{module}.{name}'


def _globals_in_one_pickle(ops: Iterable) -> Iterator[str]:
    recent: List[Optional[str]] = []  # values pushed so far (strings, else None)
    memo = {}
    for op, arg, _ in ops:
        if op.name in ('GLOBAL', 'INST'):
            yield python3_name(*arg.split(' ', 1))
        elif op.name == 'STACK_GLOBAL':
            module, name = (recent[-2:] if len(recent) >= 2 else [None, None])
            yield python3_name(module or '?', name or '?')
        if op.name in _STRING_OPS:
            recent.append(arg if isinstance(arg, str) else arg.decode('latin1'))
        elif op.name in _MEMO_GET_OPS:
            recent.append(memo.get(arg))
        elif op.name in _MEMO_PUT_OPS:
            memo[arg] = recent[-1] if recent else None
        elif op.name == 'MEMOIZE':
            memo[len(memo)] = recent[-1] if recent else None
        elif op.stack_after:
            recent.append(None)


def globals_in_pickles(stream, max_pickles: int = _MAX_PICKLES) -> List[str]:
    """Globals named by the pickles at the start of ``stream``, in file order (statically; a
    damaged pickle ends the scan)."""
    found: List[str] = []
    for _ in range(max_pickles):
        try:
            for name in _globals_in_one_pickle(pickletools.genops(stream)):
                found.append(name)
        except Exception:  # noqa: BLE001  (not a pickle / end of the pickles)
            break
    return found


def globals_in_checkpoint(path: str) -> List[str]:
    """Globals named by the object pickle of a ``torch.save`` file (zip or legacy format)."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.rsplit('/', 1)[-1] == 'data.pkl']
            if not names:
                return []
            with archive.open(names[0]) as stream:
                return globals_in_pickles(stream, max_pickles=1)
    with open(path, 'rb') as stream:
        return globals_in_pickles(stream)


def _allowed_global_names() -> Optional[Set[str]]:
    """Names torch's weights_only unpickler accepts now (defaults + ``add_safe_globals``);
    ``None`` where this torch does not expose them."""
    try:
        from torch import _weights_only_unpickler as wou
        return set(wou._get_allowed_globals()) | set(wou._get_user_allowed_globals())
    except Exception:  # noqa: BLE001
        return None


def refused_global(path: str, error: BaseException) -> Optional[str]:
    """The global a ``weights_only`` load of ``path`` refused (e.g. ``posix.system``), or
    ``None`` where the failure is not about a global (a damaged or foreign file)."""
    try:
        found = globals_in_checkpoint(path)
    except Exception:  # noqa: BLE001
        found = []
    allowed = _allowed_global_names()
    if allowed is not None:
        foreign = [g for g in found if g not in allowed]
        if foreign:
            return foreign[0]
    for pattern in _MESSAGE_PATTERNS:
        match = pattern.search(str(error))
        if match:
            named = match.group(1)
            # torch may shorten the name (``eval`` for ``builtins.eval``): prefer the full one
            full = [g for g in found if g == named or g.endswith('.' + named)]
            return full[0] if full else named
    return None
