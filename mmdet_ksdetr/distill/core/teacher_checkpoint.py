"""Teacher weights of a distillation: strict, ``weights_only`` loading of the teacher's
checkpoint (a readable report of missing / unexpected keys) and copying named teacher
parameters into the student."""
import fnmatch
import warnings
from typing import Sequence

import torch

from mmdet_ksdetr.utils import load_checkpoint_safely

__all__ = ['TeacherCheckpointError', 'load_teacher_checkpoint', 'copy_teacher_params_to_student']


class TeacherCheckpointError(RuntimeError):
    """The teacher checkpoint does not fit the teacher config; the message lists the keys."""


def _list_keys(keys, limit=15):
    keys = sorted(keys)
    shown = ', '.join(keys[:limit])
    return shown + (f', ... ({len(keys) - limit} more)' if len(keys) > limit else '')


def _state_dict_of(ckpt, path):
    if isinstance(ckpt, dict) and isinstance(ckpt.get('state_dict'), dict):
        state = ckpt['state_dict']
    elif isinstance(ckpt, dict):
        state = ckpt
    else:
        raise TeacherCheckpointError(f'teacher checkpoint "{path}" holds a '
                                     f'{type(ckpt).__name__}, not a state dict')
    state = {k: v for k, v in state.items() if torch.is_tensor(v)}
    if state and all(k.startswith('module.') for k in state):
        state = {k[len('module.'):]: v for k, v in state.items()}
    if any(k.startswith('architecture.') for k in state):
        # a distillation checkpoint: its student becomes the teacher
        state = {k[len('architecture.'):]: v for k, v in state.items()
                 if k.startswith('architecture.')}
    return state


def load_teacher_checkpoint(teacher: torch.nn.Module, path: str, strict: bool = True) -> None:
    """Load ``path`` (a file or an http(s) URL) into ``teacher`` with ``weights_only=True``.

    ``strict=True``: any missing, unexpected or mis-shaped key raises
    :class:`TeacherCheckpointError` with the list. ``strict=False``: unexpected keys and missing
    buffers only warn, but a missing or mis-shaped *parameter* still raises (the teacher would
    be partly random).
    """
    ckpt = load_checkpoint_safely(path)  # a URL is cached in torch.hub's checkpoint folder
    state = _state_dict_of(ckpt, path)
    own = teacher.state_dict()
    params = {name for name, _ in teacher.named_parameters()}
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mis_shaped = [f'{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}' for k in own
                  if k in state and state[k].shape != own[k].shape]
    fatal = missing or unexpected or mis_shaped if strict else \
        [k for k in missing if k in params] or mis_shaped
    report = []
    if missing:
        report.append(f'{len(missing)} missing keys (in the teacher, not in the checkpoint): '
                      f'{_list_keys(missing)}')
    if unexpected:
        report.append(f'{len(unexpected)} unexpected keys (in the checkpoint, not in the '
                      f'teacher): {_list_keys(unexpected)}')
    if mis_shaped:
        report.append(f'{len(mis_shaped)} keys with another shape (checkpoint vs teacher): '
                      f'{_list_keys(mis_shaped)}')
    if fatal:
        raise TeacherCheckpointError(
            f'teacher checkpoint "{path}" does not match the teacher model '
            f'({type(teacher).__name__}); the teacher would be left (partly) random.\n  ' +
            '\n  '.join(report) +
            '\nCheck that `teacher` names the config the checkpoint was trained with and that '
            '`teacher_ckpt` is that run\'s checkpoint (a distillation checkpoint is accepted: '
            'its architecture.* student is used).')
    if report:
        warnings.warn(f'teacher checkpoint "{path}": ' + '; '.join(report))
    teacher.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)


def copy_teacher_params_to_student(student, teacher, patterns: Sequence[str]):
    """Copy every teacher parameter/buffer whose name contains one of ``patterns`` (or matches
    it as a glob) into the student parameter of the same name. Returns the copied names."""
    if isinstance(patterns, str):
        patterns = [patterns]
    s_state, t_state = student.state_dict(), teacher.state_dict()
    copied = []
    for name, value in t_state.items():
        if not any(p in name or fnmatch.fnmatch(name, p) for p in patterns):
            continue
        if name not in s_state:
            raise ValueError(f'init_student_from_teacher: teacher "{name}" has no counterpart in '
                             f'the student')
        if s_state[name].shape != value.shape:
            raise ValueError(f'init_student_from_teacher: "{name}" is {tuple(value.shape)} in '
                             f'the teacher but {tuple(s_state[name].shape)} in the student')
        with torch.no_grad():
            s_state[name].copy_(value)
        copied.append(name)
    if not copied:
        raise ValueError(f'init_student_from_teacher: no teacher parameter matches {patterns}')
    return copied
