"""Checks before a checkpoint's weights go into a model: a distillation checkpoint given to a
plain detector, and a non-strict load that would leave most of the model random.

* A checkpoint saved by an MMRazor distiller holds the student under ``architecture.*`` and the
  teacher under ``teacher.*``. Loaded into the student detector, not one key fits, and a
  non-strict load scores a random model. :func:`distillation_checkpoint_problem` says instead
  to extract the student with ``tools/pth_transfer.py`` and which student config to use (read
  from the checkpoint's ``meta``: ``model.architecture.cfg_path`` or ``student_config`` of the
  saved config, else the "Student config" line in the header of the shipped distillation
  config the run was named after).
* :func:`mostly_missing_problem`: a non-strict load that fills less than half of the model's
  parameter elements is refused, whatever ``strict_load`` says.
"""
import os.path as osp
import re
from typing import Mapping, Optional

DISTILL_PREFIXES = ('architecture.', 'teacher.')
_TIMESTAMP = re.compile(r'_\d{8}_\d{6}$')
_STUDENT_LINE = re.compile(r'^#\s*Student config\b.*:\s*$')


def _is_distillation_state(state: Mapping, model_keys) -> bool:
    if any(k.startswith(DISTILL_PREFIXES) for k in model_keys):
        return False  # the model is a distiller itself
    student = sum(1 for k in state if k.startswith('architecture.'))
    distill = sum(1 for k in state if k.startswith(DISTILL_PREFIXES))
    return student > 0 and distill * 2 >= len(state)


def _student_config_from_saved_cfg(text: str) -> Optional[str]:
    try:
        from mmengine.config import Config
        cfg = Config.fromstring(text, '.py')
    except Exception:  # an old or foreign meta cfg: fall back to the run name
        return None
    model = cfg.get('model') or {}
    arch = model.get('architecture') if isinstance(model, Mapping) else None
    if isinstance(arch, Mapping) and isinstance(arch.get('cfg_path'), str):
        return arch['cfg_path']
    student = cfg.get('student_config')
    return student if isinstance(student, str) else None


def _student_config_from_run_name(experiment_name: str) -> Optional[str]:
    """The "Student config" header line of the shipped config the run was named after."""
    from mmdet_ksdetr.compat import mim_root
    root = mim_root()
    if not root or not experiment_name:
        return None
    name = _TIMESTAMP.sub('', experiment_name) + '.py'
    import glob
    for path in sorted(glob.glob(osp.join(root, 'configs', '**', name), recursive=True)):
        with open(path) as f:
            lines = [line.rstrip('\n') for line in f]
        for i, line in enumerate(lines[:-1]):
            if _STUDENT_LINE.match(line):
                return lines[i + 1].lstrip('#').strip() or None
    return None


def student_config_of(checkpoint: Mapping) -> Optional[str]:
    """The student config a distillation checkpoint's ``meta`` names, or None."""
    meta = checkpoint.get('meta') or {}
    if not isinstance(meta, Mapping):
        return None
    found = None
    if isinstance(meta.get('cfg'), str):
        found = _student_config_from_saved_cfg(meta['cfg'])
    if found is None and isinstance(meta.get('experiment_name'), str):
        found = _student_config_from_run_name(meta['experiment_name'])
    return found


def distillation_checkpoint_problem(checkpoint: Mapping, state: Mapping, model_keys,
                                    filename: str) -> Optional[str]:
    """One line when ``state`` is a distiller's (student under ``architecture.*``) and the model
    is not a distiller; None otherwise."""
    if not _is_distillation_state(state, model_keys):
        return None
    student = student_config_of(checkpoint)
    config_hint = (f'the student config {student}' if student else
                   'the student config (the detector of the distillation config\'s '
                   'model.architecture)')
    return (f'"{filename}" is a distillation checkpoint (student under "architecture.", '
            f'teacher under "teacher.") and this config\'s model is a plain detector: extract '
            f'the student with `python tools/pth_transfer.py --ckpt_path {filename} '
            f'--output_path student.pth` and use student.pth with {config_hint}')


def mostly_missing_problem(model, state: Mapping, filename: str) -> Optional[str]:
    """One line when the weights of ``state`` that fit (same name and shape) cover less than
    half of the elements of ``model``'s parameters; None otherwise."""
    params = dict(model.named_parameters())
    total = sum(p.numel() for p in params.values())
    if total == 0:
        return None
    loaded = sum(p.numel() for k, p in params.items()
                 if k in state and tuple(state[k].shape) == tuple(p.shape))
    if loaded * 2 >= total:
        return None
    return (f'"{filename}" fills only {loaded:,} of the model\'s {total:,} parameter values '
            f'({100.0 * loaded / total:.1f}%): even non-strict, that would run a mostly random '
            f'model. Check that the checkpoint belongs to this config')
