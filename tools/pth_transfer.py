"""Turn a distillation, KS-DETR or DAC-DETR checkpoint into a plain mmdet checkpoint.

    python tools/pth_transfer.py --ckpt_path work_dirs/<distill>/epoch_50.pth \\
                                 --output_path work_dirs/<distill>/student_epoch_50.pth

Accepted inputs: MMRazor / mmdet_ksdetr checkpoints (student under ``architecture.*``) and the
original DETRDistill release (student under ``student.*``; those keys keep the mmdet 2.x layout
of that release). Everything else - teacher, distillation-loss modules (``distiller.*``,
``distill_losses.*``), recorder buffers, optimizer, schedulers, message hub - is dropped. The
output holds only ``meta`` (primitive values) and ``state_dict``, so stock mmdet and
``torch.load(..., weights_only=True)`` load it; use it with the *student* config:

    python tools/test.py <student config> student_epoch_50.pth

(each toy distillation config's header names its student config).

A KS-DETR checkpoint loses its KS teacher-only parameters (every name with a ``teacher_*``
component, all in the last encoder layer) and becomes a checkpoint of its baseline detector;
the tool prints the baseline config it loads into (``configs/ks_detr/dab-detr_r50_...`` for
``ks-dab-detr_r50_...``, ``configs/toy/<det>_...`` for the toy ``ks-<det>_...``) and how many
teacher-only parameters it dropped (``get_flops`` on a KS config counts them; on the baseline
config it counts exactly the converted model). A
DAC-DETR checkpoint already is a stock checkpoint (the C-stream adds no parameter); it is
copied (meta + state_dict) and the tool says so.

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
        'not a distillation, KS-DETR or DAC-DETR checkpoint: no "architecture.*" (MMRazor) or '
        '"student.*" (DETRDistill release) keys, no KS "teacher_*" parameters, no DAC config in '
        f'its meta; its keys start with {", ".join(heads[:8])}. It is already a plain detector '
        'checkpoint: use it with tools/test.py directly.')


def _tensors(state):
    return collections.OrderedDict(
        (k, v) for k, v in state.items() if isinstance(k, str) and torch.is_tensor(v))


def _millions(tensors):
    return f'{sum(v.numel() for v in tensors.values()) / 1e6:.3f}M'


def convert(ckpt, ckpt_path):
    """``(state_dict, meta, info)`` of the plain checkpoint made from a loaded checkpoint."""
    from mmdet_ksdetr.converters import stock_conversion as sc
    state = ckpt.get('state_dict', ckpt)
    meta = _primitive(ckpt.get('meta', {})) or {}
    configs_root = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs')
    if isinstance(state, dict) and any(isinstance(k, str) and k.startswith(STUDENT_PREFIXES)
                                       for k in state):
        prefix, out = student_state_dict(state)
        info = dict(kind='distill', prefix=prefix, kept=len(out), dropped=len(state) - len(out))
    elif isinstance(state, dict) and any(
            isinstance(k, str) and sc.is_ks_teacher_key(k) for k in state):
        out, dropped = sc.split_ks_state_dict(_tensors(state))
        info = dict(kind='ks', kept=len(out), dropped=len(dropped),
                    dropped_params=_millions(dropped),
                    load_with=sc.describe_stock_config(meta, configs_root, 'ks'))
        meta.pop('cfg', None)  # the KS config; the output is the baseline detector's
    elif isinstance(state, dict) and state and sc.is_dac_checkpoint(meta):
        out = _tensors(state)
        info = dict(kind='dac', kept=len(out), dropped=len(state) - len(out),
                    load_with=sc.describe_stock_config(meta, configs_root, 'dac'))
        meta.pop('cfg', None)
    else:
        student_state_dict(state)  # raises the "not a distillation / KS / DAC" error
    meta['pth_transfer'] = dict(source=osp.basename(ckpt_path), kind=info['kind'],
                                kept_keys=info['kept'], dropped_keys=info['dropped'])
    if 'prefix' in info:
        meta['pth_transfer']['student_prefix'] = info['prefix']
    return out, meta, info


def transfer(ckpt_path, output_path):
    """Convert ``ckpt_path`` and write ``output_path`` atomically; returns a summary dict
    (``kind``: 'distill', 'ks' or 'dac'; counts; for KS / DAC ``load_with``, the stock config).
    Raises :class:`TransferError` (bad input) or ``OutputPathError`` (output not writable)."""
    from mmdet_ksdetr.utils.checkpoint_io import atomic_save, check_output_path, read_back_check
    if not osp.isfile(ckpt_path):
        raise TransferError(f'--ckpt_path "{ckpt_path}" does not exist')
    check_output_path(output_path, inputs=[ckpt_path])
    ckpt = _load(ckpt_path)
    if not isinstance(ckpt, dict):
        raise TransferError(f'"{ckpt_path}" holds a {type(ckpt).__name__}, not a checkpoint')
    state, meta, info = convert(ckpt, ckpt_path)
    out = dict(meta=meta, state_dict=state)
    atomic_save(out, output_path, check=read_back_check(out))
    return info


def summary(output_path, info):
    """The lines the tool prints for a conversion."""
    if info['kind'] == 'distill':
        return [f'wrote {output_path}: {info["kept"]} student tensors (prefix '
                f'"{info["prefix"]}" stripped), {info["dropped"]} teacher/distiller tensors '
                f'dropped; test it with the student config (the distillation config\'s '
                f'architecture)']
    if info['kind'] == 'ks':
        head = (f'wrote {output_path}: KS-DETR -> stock detector, {info["kept"]} tensors kept, '
                f'{info["dropped"]} KS teacher-only tensors ({info["dropped_params"]} '
                f'parameters, unused at inference) dropped')
    else:
        head = (f'wrote {output_path}: DAC-DETR checkpoint, already stock (the C-stream adds '
                f'no parameter): {info["kept"]} tensors copied')
    return [head, f'load it with: {info["load_with"]}']


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Extract the student of a distillation checkpoint, or the stock detector '
        'of a KS-DETR / DAC-DETR checkpoint, as a plain mmdet checkpoint (meta + state_dict).')
    parser.add_argument('--ckpt_path', '--ckpt-path', required=True,
                        help='distillation checkpoint (MMRazor architecture.* or DETRDistill '
                        'release student.* keys), KS-DETR or DAC-DETR checkpoint')
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
    print('\n'.join(summary(args.output_path, info)))


if __name__ == '__main__':
    main()
