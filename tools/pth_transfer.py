"""Turn a distillation checkpoint into a plain mmdet checkpoint of the student.

    python tools/pth_transfer.py --ckpt_path work_dirs/<distill>/epoch_50.pth \\
                                 --output_path work_dirs/<distill>/student_epoch_50.pth

Accepted inputs: MMRazor / mmdet_ksdetr checkpoints (student under ``architecture.*``) and the
original DETRDistill release (student under ``student.*``; those keys keep the mmdet 2.x layout
of that release). Everything else - teacher, distillation-loss modules (``distiller.*``,
``distill_losses.*``), recorder buffers, optimizer, schedulers, message hub - is dropped. The
output holds only ``meta`` (primitive values) and ``state_dict``, so stock mmdet and
``torch.load(..., weights_only=True)`` load it; use it with the *student* config:

    python tools/test.py <student config> student_epoch_50.pth

The input is read with ``weights_only=True`` (nothing is unpickled beyond tensors and plain
containers; a file that would run code is refused); the output is written to a temporary file
beside it, re-loaded with ``weights_only=True`` and only then renamed into place, so a failed or
killed run never leaves a half-written file and never touches a previous output. An output
that is the input is refused.
"""
import argparse
import collections
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout

import torch  # noqa: E402

STUDENT_PREFIXES = ('architecture.', 'student.')


class TransferError(ValueError):
    """The input cannot be converted; the message says why and what to do."""


def _load(path):
    # only the safe loader (mmdet_ksdetr's compat allow-lists mmengine's data-only types)
    import mmdet_ksdetr  # noqa: F401  (weights_only safe globals for mmengine checkpoints)
    from mmdet_ksdetr.utils import InputError, load_checkpoint_safely
    try:
        return load_checkpoint_safely(path, mmap=False)
    except InputError as e:
        raise TransferError(str(e)) from e


def _primitive(value):
    """``value`` reduced to primitive types (numpy scalars become Python numbers); ``None``
    marks something that must be dropped."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    item = getattr(value, 'item', None)
    if callable(item) and getattr(value, 'ndim', None) == 0 and not torch.is_tensor(value):
        try:
            return _primitive(item())
        except (TypeError, ValueError):
            return None
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            v = _primitive(v)
            if isinstance(k, str) and v is not None:
                out[k] = v
        return out
    if isinstance(value, (list, tuple)):
        items = [_primitive(v) for v in value]
        return [v for v in items if v is not None]
    return None


def student_state_dict(state):
    """``(prefix, student_state_dict)`` of a distillation state dict."""
    if not isinstance(state, dict) or not state:
        raise TransferError('the checkpoint has no state_dict')
    for prefix in STUDENT_PREFIXES:
        student = collections.OrderedDict(
            (k[len(prefix):], v) for k, v in state.items()
            if isinstance(k, str) and k.startswith(prefix) and torch.is_tensor(v))
        if student:
            return prefix, student
    heads = sorted({k.split('.')[0] + '.' for k in state if isinstance(k, str)})
    raise TransferError(
        'this is not a distillation checkpoint: no "architecture.*" (MMRazor) or "student.*" '
        f'(DETRDistill release) keys; its keys start with {", ".join(heads[:8])}. If it is '
        'already a plain detector checkpoint, use it with tools/test.py directly.')


def transfer(ckpt_path, output_path):
    """Convert ``ckpt_path`` and write ``output_path`` atomically; returns a summary dict.
    Raises :class:`TransferError` (bad input) or ``OutputPathError`` (output not writable)."""
    from mmdet_ksdetr.utils.checkpoint_io import (atomic_save, check_output_path,
                                                   read_back_check)
    if not osp.isfile(ckpt_path):
        raise TransferError(f'--ckpt_path "{ckpt_path}" does not exist')
    check_output_path(output_path, inputs=[ckpt_path])
    ckpt = _load(ckpt_path)
    if not isinstance(ckpt, dict):
        raise TransferError(f'"{ckpt_path}" holds a {type(ckpt).__name__}, not a checkpoint')
    state = ckpt.get('state_dict', ckpt)
    prefix, student = student_state_dict(state)
    meta = _primitive(ckpt.get('meta', {})) or {}
    meta['pth_transfer'] = dict(source=osp.basename(ckpt_path), student_prefix=prefix,
                                kept_keys=len(student),
                                dropped_keys=len(state) - len(student))
    out = dict(meta=meta, state_dict=student)
    atomic_save(out, output_path, check=read_back_check(out))
    return dict(prefix=prefix, kept=len(student), dropped=len(state) - len(student))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Extract the student of a distillation checkpoint as a plain mmdet '
        'checkpoint (meta + state_dict).')
    parser.add_argument('--ckpt_path', '--ckpt-path', required=True,
                        help='distillation checkpoint (MMRazor architecture.* or DETRDistill '
                        'release student.* keys)')
    parser.add_argument('--output_path', '--output-path', required=True,
                        help='where to write the student checkpoint')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from mmdet_ksdetr.utils.checkpoint_io import OutputPathError
    try:
        info = transfer(args.ckpt_path, args.output_path)
    except (TransferError, OutputPathError) as e:
        sys.exit(f'pth_transfer.py: error: {e}')
    print(f'wrote {args.output_path}: {info["kept"]} student tensors (prefix '
          f'"{info["prefix"]}" stripped), {info["dropped"]} teacher/distiller tensors dropped')


if __name__ == '__main__':
    main()
