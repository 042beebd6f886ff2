"""Teacher weights of a distillation: strict, ``weights_only`` loading of the teacher's
checkpoint (a readable report of missing / unexpected keys) and copying named teacher
parameters into the student."""
import fnmatch
import warnings
from typing import Sequence

import torch

from mmdet_ksdetr.utils import load_checkpoint_safely

__all__ = ['TeacherCheckpointError', 'load_teacher_checkpoint', 'copy_teacher_params_to_student',
           'detector_cfg_of']


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


def detector_cfg_of(model: torch.nn.Module) -> dict:
    """A model-config dict describing a built DETR ``model`` (type, queries, box refinement,
    two-stage, layer counts, classes, ResNet depth): what a release converter checks when the
    teacher's config is not at hand."""
    cfg = dict(type=type(model).__name__)
    for name in ('num_queries', 'with_box_refine', 'as_two_stage'):
        if hasattr(model, name):
            cfg[name] = getattr(model, name)
    for part in ('encoder', 'decoder'):
        if hasattr(getattr(model, part, None), 'num_layers'):
            cfg[part] = dict(num_layers=getattr(model, part).num_layers)
    if hasattr(getattr(model, 'bbox_head', None), 'num_classes'):
        cfg['bbox_head'] = dict(num_classes=model.bbox_head.num_classes)
    if hasattr(getattr(model, 'backbone', None), 'depth'):
        cfg['backbone'] = dict(type=type(model.backbone).__name__, depth=model.backbone.depth)
    return cfg


def _release_converted(ckpt, teacher, path, cfg):
    """A paper's release checkpoint (as downloaded) converted in memory for ``teacher``
    (one log line naming the format); any other checkpoint as it is."""
    from mmengine.logging import print_log

    from mmdet_ksdetr.converters.release import convert_checkpoint, is_release_checkpoint
    if not is_release_checkpoint(ckpt):
        return ckpt
    report = []
    converted = convert_checkpoint(ckpt, cfg=cfg or detector_cfg_of(teacher), report=report)
    print_log(f'teacher_ckpt: "{path}" is a {report[0].summary()}; converted in memory for '
              f'the teacher', logger='current')
    return converted


def load_teacher_checkpoint(teacher: torch.nn.Module, path: str, strict: bool = True,
                            cfg=None) -> None:
    """Load ``path`` (a file or an http(s) URL) into ``teacher`` with ``weights_only=True``.
    A paper's release checkpoint as downloaded (DETRDistill, detrex, ...) is recognised and
    converted in memory first, with ``cfg`` (the teacher's model config; default: read from
    the built ``teacher``).

    ``strict=True``: any missing, unexpected or mis-shaped key raises
    :class:`TeacherCheckpointError` with the list. ``strict=False``: unexpected keys and missing
    buffers only warn, but a missing or mis-shaped *parameter* still raises (the teacher would
    be partly random).
    """
    ckpt = load_checkpoint_safely(path)  # a URL is cached in torch.hub's checkpoint folder
    ckpt = _release_converted(ckpt, teacher, path, cfg)
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
