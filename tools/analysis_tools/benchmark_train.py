"""Time training steps (and optionally inference) of one or two configs on the same batches.

    python tools/analysis_tools/benchmark_train.py BASE_CFG [NEW_CFG] \
        [--iters 10] [--warmup 3] [--img-size 512] [--batch-size 2] [--inference] \
        [--cfg-options k=v ...] [--json out.json]

Both models are built from their configs with random weights (pretrained init and teacher
checkpoints are skipped: nothing is downloaded) and get the same synthetic batches (random
images of ``--img-size`` with random GT boxes). Iterations of the two models are interleaved,
alternating which goes first, so that machine noise hits both alike. A training step is the
whole mmengine step: data_preprocessor, forward in ``loss`` mode, loss parsing, backward,
optimizer step (with the config's gradient clipping). Reported: median and mean step time after
warm-up, and the ratio NEW/BASE of medians. Peak memory: CUDA peak allocation per model on GPU;
on CPU each model is run again in a child process and the peak RSS growth over the built model
is reported (``--no-memory`` skips it).

Given one DETR distillation config (DETRDistill, KD-DETR, D3ETR, QSKD, with or without TPRD),
it times, in one run, a distillation step against a plain student training step plus a teacher
no-grad forward and reports ``distill / (student + teacher)`` with the share of each
distillation loss (the measurement of ``benchmark_distill.py``; ``--inference`` and the memory
runs do not apply).
"""
import argparse
import copy
import json
import os.path as osp
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import torch  # noqa: E402

import mmdet_ksdetr  # noqa: E402,F401  (compat + registration)
from mmdet_ksdetr.utils import InputError, check_config_path  # noqa: E402
from mmdet_ksdetr.utils.benchmark import (add_timer_argument, build_model,  # noqa: E402
                                          make_batches, num_classes, output_file,
                                          parse_cfg_options, sync, timer_clock)

DISTILL_TOOL = osp.join(osp.dirname(osp.abspath(__file__)), 'benchmark_distill.py')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('configs', nargs='+', help='one or two config files (BASE [NEW])')
    parser.add_argument('--iters', type=int, default=10, help='timed iterations')
    parser.add_argument('--warmup', type=int, default=3, help='untimed iterations first')
    parser.add_argument('--img-size', type=int, default=512, help='square input size')
    parser.add_argument('--batch-size', type=int, default=2)
    parser.add_argument('--num-gts', type=int, default=6, help='GT boxes per image')
    parser.add_argument('--inference', action='store_true', help='also time predict()')
    parser.add_argument('--no-train', action='store_true', help='skip training steps')
    parser.add_argument('--no-memory', action='store_true', help='skip peak-memory runs (CPU)')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    add_timer_argument(parser)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='key=value overrides applied to every config')
    parser.add_argument('--json', type=output_file,
                        help='write the results to this JSON file')
    parser.add_argument('--memory-child', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.clock = timer_clock(parser, args)
    if len(args.configs) > 2:
        parser.error('give one or two configs')
    if args.iters < 1 or args.warmup < 0 or args.batch_size < 1 or args.img_size < 32:
        parser.error('--iters >= 1, --warmup >= 0, --batch-size >= 1, --img-size >= 32')
    return args


class Bench:
    """One model under test: a training step and a predict step on a given batch."""

    def __init__(self, config, args):
        self.config = config
        self.name = osp.splitext(osp.basename(config))[0]
        self.device = args.device
        self.cfg, self.model, self.optim = build_model(config, args.cfg_options, args.device)
        self.train_times, self.infer_times = [], []
        self.clock = args.clock
        self.cuda_peak = None

    def train_step(self, batch):
        self.model.train()
        batch = copy.deepcopy(batch)  # the preprocessor / model may modify samples in place
        sync(self.device)
        start = self.clock()
        self.model.train_step(batch, self.optim)
        sync(self.device)
        return self.clock() - start

    @torch.no_grad()
    def infer_step(self, batch):
        self.model.eval()
        batch = copy.deepcopy(batch)
        sync(self.device)
        start = self.clock()
        self.model.test_step(batch)
        sync(self.device)
        return self.clock() - start


def _summary(times):
    if not times:
        return None
    return dict(median_s=statistics.median(times), mean_s=statistics.fmean(times),
                min_s=min(times), n=len(times))


def run_interleaved(benches, batches, args, kind):
    total = args.warmup + args.iters
    for it in range(total):
        order = benches if it % 2 == 0 else benches[::-1]
        for bench in order:
            batch = batches[it % len(batches)]
            if kind == 'train':
                t = bench.train_step(batch)
                if it >= args.warmup:
                    bench.train_times.append(t)
            else:
                t = bench.infer_step(batch)
                if it >= args.warmup:
                    bench.infer_times.append(t)


def memory_child(args):
    """Child-process entry: peak RSS growth (MiB) of training one config on CPU."""
    bench = Bench(args.configs[0], args)
    batches = make_batches(2, args.batch_size, args.img_size, args.num_gts,
                           num_classes(bench.cfg), args.seed)
    base = _reset_peak_rss()
    for it in range(max(2, args.warmup)):
        bench.train_step(batches[it % 2])
    peak = _status_kib('VmHWM')
    print(json.dumps(dict(peak_rss_mib=peak / 1024, train_growth_mib=(peak - base) / 1024)))


def _status_kib(field):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise RuntimeError(f'{field} not in /proc/self/status')


def _reset_peak_rss():
    """Reset the kernel's peak-RSS mark (Linux ``clear_refs`` 5); returns the current RSS (KiB)."""
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')
    return _status_kib('VmRSS')


def cpu_peak_memory(config, args):
    cmd = [sys.executable, osp.abspath(__file__), config, '--memory-child',
           '--img-size', str(args.img_size), '--batch-size', str(args.batch_size),
           '--num-gts', str(args.num_gts), '--warmup', str(args.warmup), '--device', 'cpu',
           '--seed', str(args.seed)]
    if args.threads:
        cmd += ['--threads', str(args.threads)]
    if args.cfg_options:
        cmd += ['--cfg-options', *args.cfg_options]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f'memory run of {config} failed:\n{out.stderr[-2000:]}')
    return json.loads(out.stdout.strip().splitlines()[-1])


def _is_detr_distillation(config, cfg_options) -> bool:
    """Whether ``config`` builds a DETR distillation algorithm (DETRDistillBase subclass)."""
    from mmengine.config import Config
    from mmrazor.registry import MODELS as RAZOR_MODELS

    from mmdet_ksdetr.distill.core.detr_distill_base import DETRDistillBase
    cfg = Config.fromfile(check_config_path(config))
    if cfg_options:
        cfg.merge_from_dict(parse_cfg_options(cfg_options))
    model_type = cfg.model.get('type') if isinstance(cfg.get('model'), dict) else None
    if not isinstance(model_type, str):
        return False
    cls = RAZOR_MODELS.get(model_type.split('.')[-1])
    return isinstance(cls, type) and issubclass(cls, DETRDistillBase)


def distillation_argv(args, json_path):
    """benchmark_distill.py arguments for the same measurement settings."""
    argv = [args.configs[0], '--iters', str(args.iters), '--warmup', str(args.warmup),
            '--img-size', str(args.img_size), '--batch-size', str(args.batch_size),
            '--num-gts', str(args.num_gts), '--timer', args.timer, '--seed', str(args.seed),
            '--device', args.device]
    if args.threads:
        argv += ['--threads', str(args.threads)]
    if args.verbose:
        argv.append('--verbose')
    if args.cfg_options:
        argv += ['--cfg-options', *args.cfg_options]
    return argv + ['--json', json_path]


def run_benchmark_distill(args):
    """benchmark_distill.py with the same settings, in a child process: its report is printed
    here and its result returned."""
    with tempfile.TemporaryDirectory() as tmp:
        json_path = args.json or osp.join(tmp, 'distill.json')
        out = subprocess.run([sys.executable, DISTILL_TOOL, *distillation_argv(args, json_path)],
                             stdout=subprocess.PIPE, text=True)
        print(out.stdout, end='')
        if out.returncode != 0:
            sys.exit(f'benchmark_train.py: error: benchmark_distill.py failed '
                     f'(exit {out.returncode}; its message is above)')
        with open(json_path) as f:
            return json.load(f)


def main(argv=None):
    args = parse_args(argv)
    if len(args.configs) == 1 and not args.memory_child:
        try:
            distill = _is_detr_distillation(args.configs[0], args.cfg_options)
        except InputError as e:
            sys.exit(f'benchmark_train.py: error: {e}')
        if distill:
            # a DETR distillation config: its step against (student step + teacher forward)
            if args.inference or args.no_train:
                sys.exit('benchmark_train.py: error: --inference / --no-train do not apply to '
                         'a distillation config; benchmark the student\'s inference with its '
                         'own (student) config')
            print('benchmark_train.py: a DETR distillation config; timing a distillation '
                  'step against (student training step + teacher no-grad forward), as '
                  'benchmark_distill.py does')
            return run_benchmark_distill(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    try:
        if args.memory_child:
            return memory_child(args)
        benches = [Bench(c, args) for c in args.configs]
    except InputError as e:
        sys.exit(f'benchmark_train.py: error: {e}')
    n_classes = min(num_classes(b.cfg) for b in benches)
    batches = make_batches(min(4, args.warmup + args.iters), args.batch_size, args.img_size,
                           args.num_gts, n_classes, args.seed)
    if not args.no_train:
        if args.device.startswith('cuda'):
            for bench in benches:  # peak memory per model needs separate passes on GPU
                torch.cuda.reset_peak_memory_stats()
                bench.train_step(batches[0])
                bench.cuda_peak = torch.cuda.max_memory_allocated() / 2**20
        run_interleaved(benches, batches, args, 'train')
    if args.inference:
        run_interleaved(benches, batches, args, 'infer')

    results = dict(img_size=args.img_size, batch_size=args.batch_size, iters=args.iters,
                   warmup=args.warmup, device=args.device, threads=torch.get_num_threads(),
                   timer=args.timer,
                   models=[])
    for bench in benches:
        entry = dict(config=bench.config, train=_summary(bench.train_times),
                     inference=_summary(bench.infer_times))
        if bench.cuda_peak is not None:
            entry['cuda_peak_mib'] = bench.cuda_peak
        elif not args.no_memory and not args.no_train:
            entry.update(cpu_peak_memory(bench.config, args))
        results['models'].append(entry)
    if len(benches) == 2:
        a, b = results['models']
        for kind in ('train', 'inference'):
            if a[kind] and b[kind]:
                results[f'{kind}_ratio'] = b[kind]['median_s'] / a[kind]['median_s']

    print(f'\n== benchmark: {args.batch_size} x {args.img_size}x{args.img_size}, '
          f'{args.iters} iters after {args.warmup} warm-up, {args.device}, '
          f'{results["threads"]} threads, {args.timer} time ==')
    for entry, bench in zip(results['models'], benches):
        line = f'{bench.name}:'
        if entry['train']:
            line += (f'  train step median {entry["train"]["median_s"] * 1e3:.1f} ms '
                     f'(mean {entry["train"]["mean_s"] * 1e3:.1f})')
        if entry['inference']:
            line += f'  inference median {entry["inference"]["median_s"] * 1e3:.1f} ms'
        if 'cuda_peak_mib' in entry:
            line += f'  peak CUDA memory {entry["cuda_peak_mib"]:.0f} MiB'
        if 'train_growth_mib' in entry:
            line += (f'  peak RSS {entry["peak_rss_mib"]:.0f} MiB '
                     f'(+{entry["train_growth_mib"]:.0f} MiB training)')
        print(line)
    for kind in ('train', 'inference'):
        if f'{kind}_ratio' in results:
            print(f'{kind} ratio ({benches[1].name} / {benches[0].name}): '
                  f'{results[f"{kind}_ratio"]:.3f}')
    if args.json:
        from mmdet_ksdetr.utils.checkpoint_io import atomic_write
        atomic_write(args.json, lambda f: json.dump(results, f, indent=2), mode='w')
    return results


if __name__ == '__main__':
    main()
