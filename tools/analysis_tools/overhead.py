"""Training overhead of a method over its baseline, against the floor of its extra work.

    python tools/analysis_tools/overhead.py CONFIG [--baseline BASE_CONFIG] [--iters 3] \
        [--warmup 1] [--img-size 512] [--batch-size 2] [--num-gts 6] [--threads 1] [--top 8]

* ``baseline``: one training step of the model without the method: ``BASE_CONFIG`` (e.g. the
  plain DAB-DETR config for KS-DAB-DETR), or, for a distillation config, its student alone.
* ``method``: one training step of ``CONFIG``.
* ``floor``: the method's unavoidable extra work, each part timed in isolation (forward +
  backward) on the inputs it received in a method step: the teacher forward (distillers), every
  decoder pass beyond the baseline's (KS-DETR's teacher streams, KD-DETR's extra query
  groups, ...), and the teacher streams of KS-DETR's triple attention (the call with the
  teacher input minus the student-only call).
* ``gap`` = method - baseline - floor, with the operators whose self time grows most from
  the baseline step to the method step (``torch.profiler``, one step each).

Both models are built with random weights (nothing downloaded) and get the same synthetic
batches; steps are interleaved; medians of ``--iters``; process CPU time on CPU (use
``--threads 1``), wall time with CUDA synchronisation on a GPU.
"""
import argparse
import copy
import os.path as osp
import statistics
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import torch  # noqa: E402

import mmdet_ksdetr  # noqa: E402,F401  (compat + registration)
from mmdet_ksdetr.models.ks_detr.ks_triple_attention import \
    KSMultiheadTripleAttention  # noqa: E402
from mmdet_ksdetr.utils.benchmark import (build_model, make_batches, num_classes,  # noqa: E402
                                          quiet_build_logs, sync)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config')
    parser.add_argument('--baseline', help='config of the baseline (not needed for a '
                        'distillation config: its student is the baseline)')
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
    return args


class Recorder:
    """Records the (args, kwargs) of every call of a module while :attr:`on` is true."""

    def __init__(self, module):
        self.calls, self.on = [], False
        module.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs):
        if self.on:
            self.calls.append(_detached((args, kwargs)))


def _detached(obj, memo=None):
    """Detached copies of the tensors in ``obj`` (one copy per distinct tensor: ``key is
    query`` stays true); floating ones require grad (isolated backward reaches back to them,
    not into the rest of the step)."""
    memo = {} if memo is None else memo
    if torch.is_tensor(obj):
        if id(obj) not in memo:
            t = obj.detach().clone()
            memo[id(obj)] = t.requires_grad_() if t.is_floating_point() else t
        return memo[id(obj)]
    if isinstance(obj, (list, tuple)):
        return type(obj)(_detached(o, memo) for o in obj)
    if isinstance(obj, dict):
        return {k: _detached(v, memo) for k, v in obj.items()}
    return obj


def _float_sum(out):
    if torch.is_tensor(out):
        return out.float().sum() if out.requires_grad else 0
    if isinstance(out, (list, tuple)):
        return sum(_float_sum(o) for o in out)
    if isinstance(out, dict):
        return sum(_float_sum(o) for o in out.values())
    return 0


def _fwd_bwd(module, args, kwargs):
    loss = _float_sum(module(*args, **kwargs))
    if torch.is_tensor(loss):
        loss.backward()


class Stepper:
    """One model's training step on a copy of a batch, timed with ``clock``."""

    def __init__(self, model, optim, device, clock):
        self.model, self.optim, self.device, self.clock = model, optim, device, clock

    def __call__(self, batch):
        self.model.train()
        batch = copy.deepcopy(batch)
        sync(self.device)
        start = self.clock()
        self.model.train_step(batch, self.optim)
        sync(self.device)
        return self.clock() - start


def _timed(fn, device, clock, n):
    times = []
    for _ in range(n):
        sync(device)
        start = clock()
        fn()
        sync(device)
        times.append(clock() - start)
    return statistics.median(times)


def _op_times(step, batch):
    from torch.profiler import profile
    with profile() as prof:
        step(batch)
    return {e.key: e.self_cpu_time_total / 1e6 for e in prof.key_averages()}


def main(argv=None):
    args = parse_args(argv)
    quiet_build_logs(args.verbose)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    clock = time.process_time if args.device == 'cpu' else time.perf_counter
    cfg, model, optim = build_model(args.config, [], args.device)
    distiller = hasattr(model, 'teacher_forward')
    if distiller:
        from mmengine.optim import build_optim_wrapper
        base_model = copy.deepcopy(model.student)
        base_optim = build_optim_wrapper(base_model, copy.deepcopy(cfg.optim_wrapper))
        student = model.student
    elif args.baseline:
        _, base_model, base_optim = build_model(args.baseline, [], args.device)
        student = model
    else:
        sys.exit('overhead.py: error: give --baseline BASE_CONFIG (the model without the '
                 'method) for a config that is not a distillation config')
    for m in (model, base_model):
        if not hasattr(m.module if hasattr(m, 'module') else m, 'train_step'):
            sys.exit('overhead.py: error: the configs must build trainable mmengine models')
    dec = Recorder(student.decoder) if hasattr(student, 'decoder') else None
    base_dec = Recorder(base_model.decoder) if hasattr(base_model, 'decoder') else None
    ks = [(m, Recorder(m)) for m in student.modules() if isinstance(m, KSMultiheadTripleAttention)]
    batches = make_batches(args.warmup + args.iters, args.batch_size, args.img_size,
                           args.num_gts, num_classes(cfg), args.seed)
    steps = dict(baseline=Stepper(base_model, base_optim, args.device, clock),
                 method=Stepper(model, optim, args.device, clock))
    times = {k: [] for k in steps}
    for it in range(args.warmup + args.iters):
        last = it == args.warmup + args.iters - 1
        for r in ([dec, base_dec] + [r for _, r in ks]):  # record the last iteration's calls
            if r is not None:
                r.on, r.calls = last, []
        for name in (list(steps) if it % 2 == 0 else list(steps)[::-1]):
            t = steps[name](batches[it])
            if it >= args.warmup:
                times[name].append(t)
    for r in ([dec, base_dec] + [r for _, r in ks]):
        if r is not None:
            r.on = False
    n = max(args.iters, 1)
    floor = {}
    if distiller:
        data = model.data_preprocessor(copy.deepcopy(batches[-1]), True)
        floor['teacher forward (no grad)'] = _timed(
            lambda: model.teacher_forward(data['inputs'], data['data_samples']), args.device,
            clock, n)
    if dec is not None and base_dec is not None:
        extra = dec.calls[len(base_dec.calls):]
        if extra:
            floor[f'{len(extra)} extra decoder pass(es), fwd+bwd'] = sum(_timed(
                lambda a=a, k=k: _fwd_bwd(student.decoder, a, k), args.device, clock, n)
                for a, k in extra)
    for m, r in ks:
        for a, k in r.calls:
            if k.get('teacher_query') is None:
                continue
            k_student = {kk: v for kk, v in k.items() if kk != 'teacher_query'}
            with_t = _timed(lambda: _fwd_bwd(m, a, k), args.device, clock, n)
            without = _timed(lambda: _fwd_bwd(m, a, k_student), args.device, clock, n)
            floor['KS teacher attention streams, fwd+bwd'] = floor.get(
                'KS teacher attention streams, fwd+bwd', 0.0) + with_t - without
    base_ops = _op_times(steps['baseline'], batches[-1])
    method_ops = _op_times(steps['method'], batches[-1])
    grow = sorted(((method_ops.get(k, 0) - base_ops.get(k, 0), k)
                   for k in set(base_ops) | set(method_ops)), reverse=True)[:args.top]

    med = {k: statistics.median(v) for k, v in times.items()}
    fl = sum(floor.values())
    gap = med['method'] - med['baseline'] - fl
    unit = 'CPU s' if args.device == 'cpu' else 's'
    print(f'{osp.basename(args.config)}: batch {args.batch_size}, {args.img_size}px, '
          f'{args.threads} thread(s), median of {args.iters} ({unit})')
    print(f'  baseline step        {med["baseline"]:8.3f}')
    print(f'  method step          {med["method"]:8.3f}  '
          f'(+{med["method"] - med["baseline"]:.3f}, x{med["method"] / med["baseline"]:.2f})')
    print(f'  floor                {fl:8.3f}')
    for k, v in floor.items():
        print(f'    {k:38s} {v:8.3f}')
    print(f'  gap (method - baseline - floor) {gap:8.3f}  '
          f'({100 * gap / max(med["method"] - med["baseline"], 1e-9):.0f}% of the overhead)')
    print('  operators that grow most (method - baseline, self CPU time, one profiled step):')
    for v, k in grow:
        print(f'    {k:38s} {v:8.3f}')


if __name__ == '__main__':
    main()
