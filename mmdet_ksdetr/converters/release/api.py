"""The entry point of the release converters and the contract each format module fulfils.

A format module (``converters/release/<name>.py``) defines one :class:`ReleaseFormat` and calls
:func:`register_format` at import time; the package ``__init__`` imports :mod:`.formats`,
which imports every format module, so importing anything from the package registers them all.
"""
import os.path as osp
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Union

import torch

from mmdet_ksdetr.utils.errors import InputError

__all__ = ['ConversionReport', 'ReleaseConversionError', 'ReleaseFormat', 'register_format',
           'registered_formats', 'detect_format', 'is_release_checkpoint', 'convert_checkpoint']


class ReleaseConversionError(InputError):
    """A release checkpoint that cannot be converted: the message (one line) names what was
    found and what was expected (format, architecture, class count, unmapped / missing keys)."""


@dataclass
class ConversionReport:
    """What a conversion did, for the log and the CLI report.

    Attributes:
        source (str): the release format (``'detrex'``, ...).
        architecture (str): the release model recognised (e.g. ``'DINO-4scale'``).
        mapped (int): number of release tensors written into the output state dict.
        dropped (dict[str, str]): release keys left out on purpose -> why (training-only ...).
        notes (list[str]): anything else the user should know (class re-indexing, ...).
    """
    source: str
    architecture: str = ''
    mapped: int = 0
    dropped: Dict[str, str] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line: format, architecture, counts."""
        arch = f' ({self.architecture})' if self.architecture else ''
        return (f'{self.source} release checkpoint{arch}: {self.mapped} tensors mapped, '
                f'{len(self.dropped)} dropped as training-only')


@dataclass
class ReleaseFormat:
    """One release format.

    Attributes:
        name (str): the ``source=`` name.
        detect (callable): ``detect(state_dict) -> bool``: these key names are this format's.
        convert (callable): ``convert(state_dict, cfg) -> (mmdet_state_dict, ConversionReport)``;
            ``cfg`` is the model config (``mmengine.Config`` or dict of the *model*, may be None
            where the format needs none); raises :class:`ReleaseConversionError` on anything
            unmapped, missing or mis-shaped.
        priority (int): formats are tried in decreasing priority by ``source='auto'`` (a more
            specific format, e.g. KS-DETR on top of detrex, goes first).
    """
    name: str
    detect: Callable[[Dict[str, torch.Tensor]], bool]
    convert: Callable
    priority: int = 0


_FORMATS: Dict[str, ReleaseFormat] = {}


def register_format(fmt: ReleaseFormat) -> ReleaseFormat:
    """Add ``fmt`` to the formats :func:`convert_checkpoint` knows (one per name)."""
    _FORMATS[fmt.name] = fmt
    return fmt


def registered_formats() -> List[str]:
    """Names of the registered formats, in the order ``auto`` tries them."""
    return [f.name for f in sorted(_FORMATS.values(), key=lambda f: -f.priority)]


def release_state_dict(ckpt) -> Dict[str, torch.Tensor]:
    """The tensors of a loaded release checkpoint: ``ckpt['model']`` (detrex, DAC-DETR),
    ``ckpt['state_dict']`` (mmdet 2.x) or the plain mapping it is; ``module.`` prefixes of a
    DDP save removed."""
    if not isinstance(ckpt, dict):
        raise ReleaseConversionError(f'a release checkpoint is a dict, found a '
                                     f'{type(ckpt).__name__}')
    for key in ('model', 'state_dict'):
        if isinstance(ckpt.get(key), dict):
            ckpt = ckpt[key]
            break
    state = {k: v for k, v in ckpt.items() if isinstance(k, str) and torch.is_tensor(v)}
    if not state:
        raise ReleaseConversionError('no parameter tensors found (expected a dict with "model" '
                                     'or "state_dict", or a mapping of names to tensors)')
    if all(k.startswith('module.') for k in state):
        state = {k[len('module.'):]: v for k, v in state.items()}
    return state


def detect_format(state: Dict[str, torch.Tensor]) -> Optional[str]:
    """The name of the release format whose key names ``state`` has, or None (for example a
    checkpoint of this library or of mmdet 3.x)."""
    for fmt in sorted(_FORMATS.values(), key=lambda f: -f.priority):
        if fmt.detect(state):
            return fmt.name
    return None


def is_release_checkpoint(ckpt) -> bool:
    """Whether a loaded checkpoint is one of the known release formats (not mmdet 3.x)."""
    if isinstance(ckpt, dict) and isinstance(ckpt.get('meta'), dict) and \
            isinstance(ckpt.get('state_dict'), dict) and 'mmengine_version' in str(ckpt['meta']):
        return False  # saved by mmengine: already this library's format
    try:
        return detect_format(release_state_dict(ckpt)) is not None
    except ReleaseConversionError:
        return False


def convert_checkpoint(checkpoint: Union[str, dict], source: str = 'auto',
                       cfg=None, report: Optional[List[ConversionReport]] = None) -> dict:
    """Convert a release checkpoint into an mmdet checkpoint dict.

    Args:
        checkpoint (str | dict): a path, an http(s) URL (downloaded once, cached) or a loaded
            checkpoint. Files are read with the safe loader (``weights_only``).
        source (str): ``'auto'`` (detect from the key names) or one of
            :func:`registered_formats` (``'ks-detr'``, ``'detrex'``, ``'dac-detr'``,
            ``'detr-distill'``).
        cfg: the config (path, ``mmengine.Config``) of the model the weights go into, used
            by formats whose mapping depends on it (class count, layer counts).
        report (list, optional): the :class:`ConversionReport` is appended to it.

    Returns:
        dict: ``{'state_dict': ..., 'meta': {'release_source': ..., 'release_architecture':
        ..., 'converted_from': path or None}}``.

    Raises:
        ReleaseConversionError: another format than ``source``, an unknown format, unmapped /
            missing keys, shape or class-count mismatches; one line.
    """
    from mmdet_ksdetr.utils.checks import load_checkpoint_safely
    path = checkpoint if isinstance(checkpoint, str) else None
    ckpt = load_checkpoint_safely(checkpoint) if path else checkpoint
    state = release_state_dict(ckpt)
    found = detect_format(state)
    if source == 'auto':
        if found is None:
            raise ReleaseConversionError(
                f'{_name(path)}: not a known release checkpoint (formats: '
                f'{", ".join(registered_formats())}); first keys: {_first_keys(state)}')
        source = found
    elif source not in _FORMATS:
        raise ReleaseConversionError(f'unknown source "{source}": use auto or one of '
                                     f'{", ".join(registered_formats())}')
    elif found != source:
        raise ReleaseConversionError(
            f'{_name(path)}: expected a {source} release checkpoint, found '
            f'{found + " key names" if found else "an unknown format"} '
            f'(first keys: {_first_keys(state)})')
    if isinstance(cfg, str):
        from mmengine.config import Config
        cfg = Config.fromfile(cfg)
    new_state, rep = _FORMATS[source].convert(state, cfg)
    if report is not None:
        report.append(rep)
    meta = dict(release_source=source, release_architecture=rep.architecture,
                converted_from=osp.basename(path) if path else None)
    return dict(state_dict=new_state, meta=meta)


def _name(path: Optional[str]) -> str:
    return f'"{path}"' if path else 'the checkpoint'


def _first_keys(state: Dict, n: int = 3) -> str:
    keys = list(state)[:n]
    return ', '.join(keys) + (', ...' if len(state) > n else '')
