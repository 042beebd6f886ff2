"""Build the initial checkpoint of a distillation run from a student backbone and a teacher
(as the TPRD release's ``merge_weight.py`` does, with MMRazor's key prefixes).

The output is an mmengine checkpoint whose ``state_dict`` holds:

* every key of ``--student`` under ``architecture.<student-prefix><key>`` (the student is
  ``architecture`` in MMRazor, not ``student``);
* every key of ``--teacher`` under ``teacher.<key>``;
* every teacher key matching one of ``--copy-to-student`` (default ``level_embed``) also as
  ``architecture.<key>``, so the student starts from the teacher's level embeddings
  (KD-DETR needs this). Shapes must match; a mismatch is an error.

Use it with ``load_from=merged.pth`` in a distillation config (and no ``teacher_ckpt``), e.g.::

    python tools/misc/merge_weight.py --student resnet18.pth --student-prefix backbone. \\
        --teacher deformable-detr_r50.pth --out work_dirs/merged.pth
    python tools/train.py configs/kd_detr/<cfg>.py --cfg-options load_from=work_dirs/merged.pth

Inputs may be ``.pth`` (plain state dict, ``{'state_dict': ...}`` or ``{'model': ...}``) or a
detectron2-style ``.pkl`` of numpy arrays (read with an unpickler that only accepts numpy
arrays and plain containers). The same effect is available as a config option of the
distillation algorithms of this library: ``init_student_from_teacher=['level_embed']``.

``.pth`` inputs are read with ``weights_only=True`` (a file that would run code is refused).
The output is written to a temporary file beside ``--out``, read back, and only then renamed
into place: a failed or killed run never leaves a partial file and never touches a previous
output. An ``--out`` that is one of the inputs is refused.
"""
import argparse
import fnmatch
import os.path as osp
import pickle
import sys
from collections import OrderedDict

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

STUDENT_PREFIX = 'architecture.'
TEACHER_PREFIX = 'teacher.'


class MergeError(ValueError):
    """Bad input to merge_weight; the message says what to fix."""


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts/lists of numpy arrays and nothing else (detectron2 ``.pkl`` weights)."""
    _ALLOWED = {('numpy.core.multiarray', '_reconstruct'), ('numpy._core.multiarray',
                                                            '_reconstruct'),
                ('numpy', 'ndarray'), ('numpy', 'dtype'), ('numpy.core.multiarray', 'scalar'),
                ('numpy._core.multiarray', 'scalar'), ('collections', 'OrderedDict')}

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise _RefusedGlobal(module, name)


class _RefusedGlobal(pickle.UnpicklingError):
    """A global outside the allow-list of :class:`_NumpyOnlyUnpickler`."""

    def __init__(self, module, name):
        from mmdet_ksdetr.utils.pickle_globals import python3_name
        self.culprit = python3_name(module, name)
        super().__init__(f'{self.culprit} is not allowed in a weight .pkl')


def _unwrap(obj, path):
    if isinstance(obj, dict):
        for key in ('state_dict', 'model'):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj:
        raise MergeError(f'"{path}" holds no state dict (expected a mapping of names to '
                         f'tensors, optionally under "state_dict" or "model")')
    out = OrderedDict()
    for k, v in obj.items():
        if not isinstance(k, str):
            raise MergeError(f'"{path}": key {k!r} is not a string')
        if not torch.is_tensor(v):
            try:
                v = torch.as_tensor(v)
            except (TypeError, ValueError, RuntimeError) as e:
                raise MergeError(f'"{path}": value of "{k}" is not a tensor/array') from e
        out[k] = v
    return out


def _load_pkl(path):
    """A detectron2-style weight ``.pkl`` through :class:`_NumpyOnlyUnpickler`."""
    from mmdet_ksdetr.utils.checks import code_refusal
    try:
        with open(path, 'rb') as f:
            return _NumpyOnlyUnpickler(f, encoding='latin1').load()
    except _RefusedGlobal as e:
        raise MergeError(code_refusal(f'weight file "{path}"', e.culprit)) from e
    except OSError as e:
        raise MergeError(f'cannot read weight file "{path}": {e.strerror or e}') from e
    except Exception as e:  # noqa: BLE001  (any parse failure: not a weight .pkl)
        raise MergeError(f'"{path}" is not a weight .pkl ({type(e).__name__}: {e})') from e


def load_state(path):
    """Load a ``.pth``/``.pkl`` weight file as an OrderedDict of tensors."""
    if not osp.isfile(path):
        raise MergeError(f'weight file "{path}" does not exist')
    if path.endswith('.pkl'):
        obj = _load_pkl(path)
    else:
        from mmdet_ksdetr.utils import InputError, load_checkpoint_safely
        try:
            obj = load_checkpoint_safely(path, mmap=False)
        except InputError as e:
            raise MergeError(str(e)) from e
    return _unwrap(obj, path)


def merge_weights(student_state, teacher_state, student_prefix='', copy_to_student=(
        'level_embed', ), student_key_prefix=STUDENT_PREFIX, teacher_key_prefix=TEACHER_PREFIX):
    """Merge a student (backbone) state dict and a teacher state dict into one algorithm state
    dict with MMRazor prefixes. ``copy_to_student`` are substrings or fnmatch patterns of
    teacher keys that are also copied into the student. Returns ``(state_dict, report)``."""
    merged = OrderedDict()
    for k, v in student_state.items():
        merged[student_key_prefix + student_prefix + k] = v
    for k, v in teacher_state.items():
        key = k if k.startswith(teacher_key_prefix) else teacher_key_prefix + k
        merged[key] = v
    copied = []
    for k, v in teacher_state.items():
        bare = k[len(teacher_key_prefix):] if k.startswith(teacher_key_prefix) else k
        if any(p in bare or fnmatch.fnmatch(bare, p) for p in copy_to_student):
            dst = student_key_prefix + bare
            if dst in merged and merged[dst].shape != v.shape:
                raise MergeError(f'cannot copy teacher "{bare}" {tuple(v.shape)} into the '
                                 f'student: the student weight has {tuple(merged[dst].shape)}')
            merged[dst] = v.clone()
            copied.append(bare)
    if copy_to_student and not copied:
        raise MergeError(f'no teacher key matches --copy-to-student {list(copy_to_student)}; '
                         f'the teacher has e.g. {list(teacher_state)[:5]}')
    report = dict(num_student=len(student_state), num_teacher=len(teacher_state),
                  copied_to_student=copied)
    return merged, report


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--student', required=True, help='student (backbone) weights, .pth or .pkl')
    p.add_argument('--student-prefix', default='',
                   help='prefix added to the student keys inside the student, e.g. '
                   '"backbone." for a torchvision/mmdet ResNet checkpoint')
    p.add_argument('--teacher', required=True, help='teacher detector checkpoint')
    p.add_argument('--out', required=True, help='output .pth')
    p.add_argument('--copy-to-student', nargs='*', default=['level_embed'],
                   help='teacher keys (substrings or glob patterns) also copied into the '
                   'student (default: level_embed); pass nothing to copy none')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from mmdet_ksdetr.utils.checkpoint_io import (OutputPathError, atomic_save, check_output_path,
                                                  read_back_check)
    try:
        if args.student_prefix and not args.student_prefix.endswith('.'):
            raise MergeError(f'--student-prefix "{args.student_prefix}" must end with "."')
        check_output_path(args.out, inputs=[args.student, args.teacher])
        student = load_state(args.student)
        teacher = load_state(args.teacher)
        merged, report = merge_weights(student, teacher, args.student_prefix,
                                       tuple(args.copy_to_student))
        out = dict(meta=dict(merged_from=dict(student=args.student, teacher=args.teacher)),
                   state_dict=merged)
        atomic_save(out, args.out, check=read_back_check(out))
    except (MergeError, OutputPathError) as e:
        sys.exit(f'merge_weight.py: error: {e}')
    print(f'wrote {args.out}: {report["num_student"]} student keys -> architecture.'
          f'{args.student_prefix}*, {report["num_teacher"]} teacher keys -> teacher.*, '
          f'copied to the student: {report["copied_to_student"]}')


if __name__ == '__main__':
    main()
