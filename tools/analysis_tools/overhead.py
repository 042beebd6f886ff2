"""Training overhead of a method over its baseline, against the floor of its extra work.

    python tools/analysis_tools/overhead.py CONFIG [--baseline BASE_CONFIG] [--iters 3] \
        [--warmup 1] [--img-size 512] [--batch-size 2] [--num-gts 6] [--threads 1] [--top 8]
    python tools/analysis_tools/overhead.py --suite ks_detr [...]   # a paper's table

* ``baseline``: one training step of the model without the method: ``BASE_CONFIG`` (e.g. the
  plain DAB-DETR config for KS-DAB-DETR), or, for a distillation config, its student alone.
* ``method``: one training step of ``CONFIG``.
* ``floor``: the method's unavoidable extra work, each part timed in isolation (forward +
  backward) on the very inputs it received in a method step (recorded in one untimed step),
  in the same rounds as the two steps:

  - distillers: the teacher forward (no grad); the student's extra query groups (decoder and
    head); the distillation losses (``compute_distill_losses``, with the matching and TPRD's
    refinement, and the recorder-fed losses with their connectors);
  - every ``forward_decoder`` call beyond the baseline's (KS-DETR's teacher passes);
  - the head loss arguments the baseline's head does not get (KS-DETR's teacher groups,
    DAC-DETR's C-stream): the head loss with them minus without them (their read-out,
    matching and losses);
  - DAC-DETR's C-stream inside the decoder: the decoder with it minus without it;
  - KS-DETR: the teacher streams of the last encoder layer (teacher input, the teacher
    streams of the triple attention, their FFN and norms: the layer with the GT mask minus the
    stock call) and the GT foreground token mask.
* ``gap`` = method - baseline - floor: what our code adds beyond the method's own work, with
  the operators that make it up: self time in the method step minus the baseline step minus
  the floor's parts (``torch.profiler``, one profiled run of each).
* ``peak``: the training step's peak memory above what was allocated before it (CPU: the
  profiler's allocation events; GPU: ``torch.cuda.max_memory_allocated``).

Both models are built with random weights (nothing downloaded) and get the same synthetic
batches; every round runs both steps and each floor part once, in a rotating order; medians of
``--iters`` rounds; process CPU time on CPU (use
``--threads 1``), wall time with CUDA synchronisation on a GPU. ``--suite`` runs a paper's
full-size configs (``SUITES``) and prints one markdown table.
"""
import argparse
import copy
import os
import os.path as osp
import sys
import time
import warnings
from contextlib import contextmanager
from dataclasses import fields, is_dataclass, replace

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import torch  # noqa: E402

import mmdet_ksdetr  # noqa: E402,F401  (compat + registration)
from mmdet_ksdetr.models.ks_detr.ks_encoder_layers import (  # noqa: E402
    KSDeformableDetrTransformerEncoderLayer, KSDetrTransformerEncoderLayer)
from mmdet_ksdetr.utils.benchmark import (build_model, interleaved_medians,  # noqa: E402
                                          make_batches, num_classes, output_file,
                                          quiet_build_logs)

_KD = 'deformable-detr_r50_deformable-detr_r18_8xb2-50e_coco.py'
#: paper -> [(method config, baseline config or None for a distiller)], full-size R50 configs
SUITES = {
    'ks_detr': [
        ('configs/ks_detr/ks-dab-detr_r50_8xb2-50e_coco.py',
         'configs/ks_detr/dab-detr_r50_8xb2-50e_coco.py'),
        ('configs/ks_detr/ks-conditional-detr_r50_8xb2-50e_coco.py',
         'configs/ks_detr/conditional-detr_r50_8xb2-50e_coco.py'),
        ('configs/ks_detr/ks-dn-detr_r50_8xb2-50e_coco.py',
         'configs/ks_detr/dn-detr_r50_8xb2-50e_coco.py'),
        ('configs/ks_detr/ks-deformable-detr_r50_8xb2-12e_coco.py',
         'configs/ks_detr/deformable-detr_r50_8xb2-12e_coco.py'),
        ('configs/ks_detr/ks-dn-deformable-detr_r50_8xb2-12e_coco.py',
         'configs/ks_detr/dn-deformable-detr_r50_8xb2-12e_coco.py'),
    ],
    'dac_detr': [
        ('configs/dac_detr/dac-detr-cdn_r50_8xb2-12e_coco.py',
         'mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py'),
        ('configs/dac_detr/dac-deformable-detr-refine-twostage_r50_16xb2-50e_coco.py',
         'mmdet::deformable_detr/deformable-detr-refine-twostage_r50_16xb2-50e_coco.py'),
    ],
    'detr_distill': [(f'configs/detr_distill/detr-distill{v}_{_KD}', None)
                     for v in ('', '-tprd', '-nocl')],
    'kd_detr': [(f'configs/kd_detr/kd-detr{v}_{pair}', None) for pair in (
        'dab-detr_r50_dab-detr_r18_8xb2-50e_coco.py', _KD,
        'dino-4scale_r50_dino-4scale_r18_8xb2-12e_coco.py') for v in ('', '-tprd')],
    'd3etr': [(f'configs/d3etr/d3etr{v}_{_KD}', None) for v in ('', '-tprd')],
    'qskd': [(f'configs/qskd/qskd{v}_{_KD}', None) for v in ('', '-tprd')],
    'crosskd': [(f'configs/crosskd/crosskd_{_KD}', None)],
    'feature_kd': [(f'configs/feature_kd/{m}_{_KD}', None) for m in ('fitnet', 'fgd', 'mgd')],
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', nargs='?')
    parser.add_argument('--baseline', help='config of the baseline (not needed for a '
                        'distillation config: its student is the baseline)')
    parser.add_argument('--suite', nargs='+', choices=sorted(SUITES) + ['all'],
                        help="run a paper's full-size configs and print one markdown table")
    parser.add_argument('--table', metavar='FILE', type=output_file,
                        help='with --suite: also write the markdown table to FILE')
    parser.add_argument('--iters', type=int, default=3)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--img-size', type=int, default=512)
    parser.add_argument('--batch-size', type=int, default=2)
    parser.add_argument('--num-gts', type=int, default=6)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--top', type=int, default=8, help='gap contributors to list')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--verbose', action='store_true')
    args = parser.parse_args(argv)
    if args.iters < 1 or args.warmup < 0 or args.batch_size < 1 or args.img_size < 32:
        parser.error('--iters >= 1, --warmup >= 0, --batch-size >= 1, --img-size >= 32')
    if (args.config is None) == (args.suite is None):
        parser.error('give either CONFIG or --suite')
    if args.table and not args.suite:
        parser.error('--table needs --suite')
    return args


# ---------------------------------------------------------------------------- recording
def _detached(obj, memo=None):
    """A copy of ``obj`` whose tensors are detached clones that require grad where the
    originals did (one clone per distinct tensor: ``key is query`` stays true), so that an
    isolated backward reaches back to them and not into the rest of the step."""
    memo = {} if memo is None else memo
    if torch.is_tensor(obj):
        if id(obj) not in memo:
            t = obj.detach().clone()
            memo[id(obj)] = t.requires_grad_(obj.requires_grad and t.is_floating_point())
        return memo[id(obj)]
    if isinstance(obj, (list, tuple)):
        return type(obj)(_detached(o, memo) for o in obj)
    if isinstance(obj, dict):
        return {k: _detached(v, memo) for k, v in obj.items()}
    if is_dataclass(obj) and not isinstance(obj, type):
        return replace(obj, **{f.name: _detached(getattr(obj, f.name), memo)
                               for f in fields(obj) if f.init})
    return obj


class Calls:
    """Records the (args, kwargs) of every call of ``owner.name`` (a bound method or a
    module's ``forward``) while :attr:`on` is true; :attr:`fn` is the unwrapped callable."""

    def __init__(self, owner, name):
        self.calls, self.on = [], False
        self.fn = getattr(owner, name)

        def recorded(*args, **kwargs):
            if self.on:
                self.calls.append(_detached((args, kwargs)))
            return self.fn(*args, **kwargs)

        setattr(owner, name, recorded)


def _float_sum(out):
    if torch.is_tensor(out):
        return out.float().sum() if out.requires_grad else 0
    if isinstance(out, (list, tuple)):
        return sum(_float_sum(o) for o in out)
    if isinstance(out, dict):
        return sum(_float_sum(o) for o in out.values())
    if is_dataclass(out) and not isinstance(out, type):
        return sum(_float_sum(getattr(out, f.name)) for f in fields(out))
    return 0


def _backward(out):
    loss = _float_sum(out)
    if torch.is_tensor(loss):
        loss.backward()


class Stepper:
    """One model's training step on a batch (on a copy of it unless ``own``: the step may
    change the batch it is given)."""

    def __init__(self, model, optim):
        self.model, self.optim = model, optim

    def __call__(self, batch, own=False):
        self.model.train()
        self.model.train_step(batch if own else copy.deepcopy(batch), self.optim)

    def timed_rounds(self, batches):
        """A callable that steps on its own copy of the next batch each time it is called
        (the copies are made here, outside any timing)."""
        fresh = iter([copy.deepcopy(b) for b in batches])
        return lambda: self(next(fresh), own=True)


@contextmanager
def _native_stderr_silenced():
    """The profiler's native start / stop banners and allocator notes go to file descriptor
    2 (not ``sys.stderr``); the step profiled already ran cleanly in the timed loop."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, 'w') as null:
        os.dup2(null.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _profile(step, batch, device, memory=True):
    """Self time of each operator (s) and the peak memory (MiB, with ``memory``) of one step
    above what was allocated before it."""
    from torch.profiler import profile
    memory = memory and device == 'cpu'
    if device != 'cpu':
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    with _native_stderr_silenced(), profile(profile_memory=memory) as prof:
        step(batch)
    if device != 'cpu':
        peak = torch.cuda.max_memory_allocated() - before
    elif memory:
        events = sorted((e for e in prof.profiler.kineto_results.events()
                         if e.name() == '[memory]' and e.device_type().name == 'CPU'),
                        key=lambda e: e.start_ns())
        live = peak = 0
        for e in events:
            live += e.nbytes()
            peak = max(peak, live)
    else:
        peak = 0
    ops = {e.key: e.self_cpu_time_total / 1e6 for e in prof.key_averages()}
    return ops, peak / 2**20


# ------------------------------------------------------------------------------ the floor
class FloorProbes:
    """Records, in one untimed method step and one baseline step, the inputs of every piece of
    extra work the method does, then times each piece in isolation."""

    def __init__(self, model, base_model, distiller):
        self.distiller = distiller
        self.student = model.student if distiller else model
        self.calls = {}

        def rec(key, owner, name):
            if owner is not None and hasattr(owner, name):
                self.calls[key] = Calls(owner, name)

        rec('decoder', self.student, 'forward_decoder')
        rec('base_decoder', base_model, 'forward_decoder')
        rec('head_loss', self.student.bbox_head, 'loss')
        rec('base_head_loss', base_model.bbox_head, 'loss')
        rec('gt_mask', self.student, 'loss_encoder_inputs')
        ks_layers = (KSDetrTransformerEncoderLayer, KSDeformableDetrTransformerEncoderLayer)
        for i, m in enumerate(m for m in self.student.modules() if isinstance(m, ks_layers)):
            rec(f'ks_layer{i}', m, 'forward')
        if distiller:
            rec('distill_losses', model, 'compute_distill_losses')
            mm_distiller = model.distiller
            modules = [*getattr(mm_distiller, 'connectors', {}).values(),
                       *getattr(mm_distiller, 'distill_losses', {}).values()]
            self.recorder_modules = [Calls(m, 'forward') for m in modules]

            def only_inside(fn=mm_distiller.compute_distill_losses):
                """Records the connectors' and losses' calls inside this call only."""
                for c in self.recorder_modules:
                    c.on = self.recording
                try:
                    return fn()
                finally:
                    for c in self.recorder_modules:
                        c.on = False
            mm_distiller.compute_distill_losses = only_inside
        else:
            self.recorder_modules = []
        self.recording = False

    def record(self, steps, batch):
        self.recording = True
        for c in self.calls.values():
            c.on, c.calls = True, []
        for c in self.recorder_modules:
            c.calls = []
        for step in steps:
            step(batch)
        for c in self.calls.values():
            c.on = False
        self.recording = False

    def _calls(self, key):
        return self.calls[key].calls if key in self.calls else []

    def parts(self, teacher_forward=None):
        """The floor's parts: ``[(name, sign, fn)]``; the part ``name`` costs the sum of
        ``sign * time(fn)`` over its entries (``sign`` -1: the subtracted half of a
        with-minus-without part)."""
        parts = []

        def pair(name, with_fn, without_fn):
            """A part that costs ``time(with_fn) - time(without_fn)``, each backpropagated."""
            parts.append((name, 1, lambda: _backward(with_fn())))
            parts.append((name, -1, lambda: _backward(without_fn())))

        if teacher_forward is not None:
            parts.append(('teacher forward (no grad)', 1, teacher_forward))
        dec = self.calls.get('decoder')
        extra = self._calls('decoder')[len(self._calls('base_decoder')):]
        if extra:
            from mmdet_ksdetr.distill.core.query_group import head_forward

            def decode(a, k):
                out = dec.fn(*a, **k)
                return head_forward(self.student, out) if self.distiller else out
            name = f'{len(extra)} extra {"decoder + head" if self.distiller else "decoder"} ' \
                   f'pass(es)'
            parts += [(name, 1, lambda a=a, k=k: _backward(decode(a, k))) for a, k in extra]
        if getattr(self.student, 'with_c_stream', False) and dec is not None:
            def without_c(a, k):
                self.student.with_c_stream = False
                try:
                    return dec.fn(*a, **k)
                finally:
                    self.student.with_c_stream = True
            for a, k in self._calls('decoder'):
                pair('C-stream in the decoder', lambda a=a, k=k: dec.fn(*a, **k),
                     lambda a=a, k=k: without_c(a, k))
        base_keys = set().union(*(k for _, k in self._calls('base_head_loss')))
        head = self.calls.get('head_loss')
        for a, k in self._calls('head_loss'):
            extra_keys = set(k) - base_keys
            if extra_keys:
                k_base = {kk: v for kk, v in k.items() if kk not in extra_keys}
                pair(f'head loss of {", ".join(sorted(extra_keys))}',
                     lambda a=a, k=k: head.fn(*a, **k), lambda a=a, k=k_base: head.fn(*a, **k))
        for a, k in self._calls('gt_mask'):
            parts.append(('GT foreground token mask', 1,
                          torch.no_grad()(lambda a=a, k=k: self.calls['gt_mask'].fn(*a, **k))))
        for key, c in self.calls.items():
            if not key.startswith('ks_layer'):
                continue
            for a, k in c.calls:
                if k.get('ks_fg_mask') is None:
                    continue
                k_student = {kk: v for kk, v in k.items() if kk != 'ks_fg_mask'}
                pair('KS teacher streams of the last encoder layer',
                     lambda c=c, a=a, k=k: c.fn(*a, **k),
                     lambda c=c, a=a, k=k_student: c.fn(*a, **k))
        losses = [(self.calls['distill_losses'].fn, a, k)
                  for a, k in self._calls('distill_losses')]
        losses += [(c.fn, a, k) for c in self.recorder_modules for a, k in c.calls]
        parts += [('distillation losses', 1, lambda fn=fn, a=a, k=k: _backward(fn(*a, **k)))
                  for fn, a, k in losses]
        return parts


# ------------------------------------------------------------------------------- a method
@contextmanager
def _build_logs_quiet(verbose):
    """Without ``verbose``: no per-parameter optimizer warnings of mmengine and no random
    teacher warning while the models are built."""
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    if not verbose:
        logger.setLevel('ERROR')
    try:
        with warnings.catch_warnings():
            if not verbose:
                warnings.filterwarnings('ignore', message='.*no teacher_ckpt given')
            yield
    finally:
        logger.setLevel(level)


def measure(config, baseline, args):
    """Times, floor and peak memory of one method config against its baseline."""
    clock = time.process_time if args.device == 'cpu' else time.perf_counter
    with _build_logs_quiet(args.verbose):
        torch.manual_seed(args.seed)
        cfg, model, optim = build_model(config, [], args.device)
        distiller = hasattr(model, 'teacher_forward')
        if distiller:
            from mmengine.optim import build_optim_wrapper
            base_model = copy.deepcopy(model.student)
            base_optim = build_optim_wrapper(base_model, copy.deepcopy(cfg.optim_wrapper))
        elif baseline:
            _, base_model, base_optim = build_model(baseline, [], args.device)
        else:
            sys.exit('overhead.py: error: give --baseline BASE_CONFIG (the model without the '
                     'method) for a config that is not a distillation config')
    student = model.student if distiller else model
    if not all(hasattr(m, 'train_step') for m in (model, base_model)) or \
            not all(hasattr(m, 'bbox_head') for m in (student, base_model)):
        sys.exit('overhead.py: error: the configs must build trainable mmengine DETR models')
    probes = FloorProbes(model, base_model, distiller)
    batches = make_batches(args.warmup + args.iters + 1, args.batch_size, args.img_size,
                           args.num_gts, num_classes(cfg), args.seed)
    steps = dict(baseline=Stepper(base_model, base_optim), method=Stepper(model, optim))
    probes.record(steps.values(), batches[0])  # the floor's inputs, from an untimed step
    teacher_forward = None
    if distiller:
        data = model.data_preprocessor(copy.deepcopy(batches[0]), True)
        teacher_forward = (lambda: model.teacher_forward(data['inputs'], data['data_samples']))
    parts = probes.parts(teacher_forward)
    # every round: both steps (each on the round's batch) and each floor part once, in a
    # rotating order, so that a busy phase of the machine hits all of them alike
    rounds = batches[1:1 + args.warmup + args.iters]
    jobs = {name: step.timed_rounds(rounds) for name, step in steps.items()}
    for i, (_, _, fn) in enumerate(parts):
        # zeroing the gradients as a step does: none is carried into the next job
        jobs[i] = lambda fn=fn: (fn(), model.zero_grad(set_to_none=True))
    med = interleaved_medians(jobs, args.iters, args.warmup, clock, args.device, rotate=True)
    floor, floor_ops = {}, {}
    for i, (name, sign, fn) in enumerate(parts):
        floor[name] = floor.get(name, 0.0) + sign * med[i]
        for k, v in _profile(lambda _: fn(), None, args.device, memory=False)[0].items():
            floor_ops[k] = floor_ops.get(k, 0.0) + sign * v
    base_ops, base_peak = _profile(steps['baseline'], batches[-1], args.device)
    method_ops, method_peak = _profile(steps['method'], batches[-1], args.device)
    grow = sorted(((method_ops.get(k, 0) - base_ops.get(k, 0) - floor_ops.get(k, 0), k)
                   for k in set(base_ops) | set(method_ops)), reverse=True)[:args.top]
    return dict(config=config, baseline=med['baseline'], method=med['method'], floor=floor,
                grow=grow, peak_baseline=base_peak, peak_method=method_peak)


def summary(r):
    """The ratios of a :func:`measure` result: method / baseline, (baseline + floor) /
    baseline, and method / (baseline + floor) (the goal is at most 1.05)."""
    fl = sum(r['floor'].values())
    return dict(ratio=r['method'] / r['baseline'], floor_ratio=(r['baseline'] + fl) /
                r['baseline'], over_floor=r['method'] / (r['baseline'] + fl),
                gap=r['method'] - r['baseline'] - fl, floor_total=fl)


def report(r, args):
    s = summary(r)
    unit = 'CPU s' if args.device == 'cpu' else 's'
    print(f'{osp.basename(r["config"])}: batch {args.batch_size}, {args.img_size}px, '
          f'{args.threads} thread(s), median of {args.iters} ({unit})')
    print(f'  baseline step        {r["baseline"]:8.3f}')
    print(f'  method step          {r["method"]:8.3f}  '
          f'(+{r["method"] - r["baseline"]:.3f}, x{s["ratio"]:.2f})')
    print(f'  floor                {s["floor_total"]:8.3f}  (baseline + floor: '
          f'x{s["floor_ratio"]:.2f}; method / (baseline + floor): x{s["over_floor"]:.3f})')
    for k, v in r['floor'].items():
        print(f'    {k:44s} {v:8.3f}')
    over = r['method'] - r['baseline']
    share = f'  ({100 * s["gap"] / over:.0f}% of the overhead)' if over > 0 else ''
    print(f'  gap (method - baseline - floor) {s["gap"]:8.3f}{share}')
    print(f'  peak memory of the step (MiB): baseline {r["peak_baseline"]:.0f}, method '
          f'{r["peak_method"]:.0f} (x{r["peak_method"] / max(r["peak_baseline"], 1e-9):.2f})')
    print('  operators of the gap (self time: method - baseline - floor, one profiled run of '
          'each):')
    for v, k in r['grow']:
        print(f'    {k:44s} {v:8.3f}')


TABLE_HEAD = ('| config | baseline step | method step | ratio | floor ratio | '
              'method / (baseline + floor) | peak memory baseline / method |\n'
              '|---|---|---|---|---|---|---|')


def table_row(r):
    s = summary(r)
    return (f'| `{osp.basename(r["config"])[:-3]}` | {r["baseline"]:.2f} s | '
            f'{r["method"]:.2f} s | {s["ratio"]:.2f} | {s["floor_ratio"]:.2f} | '
            f'**{s["over_floor"]:.2f}** | {r["peak_baseline"]:.0f} / '
            f'{r["peak_method"]:.0f} MiB |')


def main(argv=None):
    args = parse_args(argv)
    quiet_build_logs(args.verbose)
    torch.set_num_threads(args.threads)
    if args.config:
        result = measure(args.config, args.baseline, args)
        report(result, args)
        return [result]
    names = sorted(SUITES) if 'all' in args.suite else args.suite
    results = []
    for name in names:
        for config, baseline in SUITES[name]:
            results.append(measure(config, baseline, args))
            report(results[-1], args)
            sys.stdout.flush()
    table = (f'{args.device}, batch {args.batch_size}, {args.img_size}px, {args.threads} '
             f'thread(s), median of {args.iters}\n\n{TABLE_HEAD}\n' +
             ''.join(table_row(r) + '\n' for r in results))
    print('\n' + table, end='')
    if args.table:
        from mmdet_ksdetr.utils.checkpoint_io import atomic_write
        atomic_write(args.table, lambda f: f.write(table), mode='w')
    return results


if __name__ == '__main__':
    main()
