"""Cost of a DETR distillation step against its unavoidable part.

    python tools/analysis_tools/benchmark_distill.py DISTILL_CFG [--iters 10] [--warmup 3] \
        [--img-size 512] [--batch-size 2] [--cfg-options k=v ...] [--json out.json]

Builds the distillation algorithm of ``DISTILL_CFG`` with random weights (no checkpoint is
loaded, nothing is downloaded) and times, interleaved on the same synthetic batches
(``mmdet_ksdetr.utils.benchmark.make_batches``):

* ``distill``: one full training step of the algorithm (preprocess, teacher forward, student
  forward + GT loss, distillation losses, backward, optimizer step);
* ``student``: one plain training step of the student detector alone (its own optimizer);
* ``teacher``: one teacher forward as the algorithm runs it (``eval()``, ``no_grad``,
  preprocess included).

Reported: medians, ``ratio = distill / (student + teacher)`` and the share of the distill step
spent in the distillation pieces (forward time of the Hungarian matching, of each loss module
and of the teacher-group decoder pass; backward of the losses is inside the step but not split
out).
"""
import argparse
import copy
import json
import os.path as osp
import statistics
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import torch  # noqa: E402

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))  # call_timers beside this tool
from call_timers import CallTimers  # noqa: E402
import mmdet_ksdetr  # noqa: E402,F401  (compat + registration)
from mmdet_ksdetr.utils.benchmark import (add_timer_argument,  # noqa: E402
                                          build_model, make_batches, num_classes, output_file,
                                          sync, timer_clock)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='a DETR distillation config (DETRDistill & co.)')
    parser.add_argument('--iters', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--img-size', type=int, default=512)
    parser.add_argument('--batch-size', type=int, default=2)
    parser.add_argument('--num-gts', type=int, default=6)
    parser.add_argument('--threads', type=int, default=None)
    add_timer_argument(parser)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--cfg-options', nargs='+', default=[])
    parser.add_argument('--json', type=output_file,
                        help='write the results to this JSON file')
    args = parser.parse_args(argv)
    if args.iters < 1 or args.warmup < 0:
        parser.error('--iters >= 1 and --warmup >= 0')
    args.clock = timer_clock(parser, args)
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from mmengine.optim import build_optim_wrapper
    cfg, algo, optim = build_model(args.config, args.cfg_options, args.device)
    if not hasattr(algo, 'teacher_forward'):
        sys.exit(f'benchmark_distill.py: error: {type(algo).__name__} is not a DETR '
                 f'distillation algorithm (DETRDistillBase subclass)')
    student = copy.deepcopy(algo.student)
    student_optim = build_optim_wrapper(student, copy.deepcopy(cfg.optim_wrapper))
    torch.manual_seed(args.seed)
    batches = make_batches(max(4, args.warmup + args.iters), args.batch_size, args.img_size,
                           args.num_gts, num_classes(cfg), args.seed)

    clock = args.clock
    timers = CallTimers(args.device, clock)
    timers.wrap(algo.matcher, 'match', 'hungarian matching') if hasattr(algo, 'matcher') \
        else None
    if hasattr(algo, 'cross_predictions'):  # CrossKD: teacher decoder on the student memory
        timers.wrap(algo, 'cross_predictions', 'CrossKD cross pass (forward)')
    if getattr(algo, 'tprd', False):  # TPRD: the refinement's two steps (the
        # TPRD object itself stays: algorithms read its attributes, e.g. QSKD its assigner)
        from mmdet_ksdetr.distill.tprd import refinement
        for fn in ('assign_teacher_layers', 'refine_teacher_predictions'):
            timers.wrap(refinement, fn, 'TPRD teacher refinement')
    for name, module in algo.distiller.distill_losses.items():
        for method in ('forward', 'forward_layers'):  # the layer-batched entry point too
            if hasattr(module, method):
                timers.wrap(module, method, f'{name} ({type(module).__name__})')

    def distill_step(batch):
        algo.train()
        start = clock()
        algo.train_step(batch, optim)
        sync(args.device)
        return clock() - start

    def student_step(batch):
        student.train()
        start = clock()
        student.train_step(batch, student_optim)
        sync(args.device)
        return clock() - start

    def teacher_step(batch):
        algo.train()  # the teacher stays in eval()
        start = clock()
        data = algo.data_preprocessor(batch, True)
        algo.teacher_forward(data['inputs'], data['data_samples'])
        sync(args.device)
        return clock() - start

    steps = dict(distill=distill_step, student=student_step, teacher=teacher_step)
    times = {k: [] for k in steps}
    order = list(steps)
    for it in range(args.warmup + args.iters):
        timed = it >= args.warmup
        for name in (order if it % 2 == 0 else order[::-1]):
            batch = copy.deepcopy(batches[it % len(batches)])
            timers.active = timed and name == 'distill'
            t = steps[name](batch)
            if timed:
                times[name].append(t)
        timers.active = False
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med['distill'] / (med['student'] + med['teacher'])
    n = args.iters
    pieces = {k: v / n for k, v in sorted(timers.totals.items(), key=lambda kv: -kv[1])}
    result = dict(config=args.config, device=args.device, img_size=args.img_size,
                  batch_size=args.batch_size, iters=n, warmup=args.warmup,
                  threads=torch.get_num_threads(), timer=args.timer, median_s=med, ratio=ratio,
                  times_s=times,
                  distill_pieces_mean_s=pieces,
                  distill_pieces_share={k: v / med['distill'] for k, v in pieces.items()})
    print(f'{osp.basename(args.config)}  {args.img_size}x{args.img_size}, batch '
          f'{args.batch_size}, {n} iters after {args.warmup} warm-up, {args.device}, '
          f'{torch.get_num_threads()} threads, {args.timer} time')
    for k in ('distill', 'student', 'teacher'):
        print(f'  {k:8s} step median {med[k] * 1000:9.1f} ms')
    print(f'  ratio distill / (student + teacher) = {ratio:.3f}')
    for k, v in pieces.items():
        print(f'  {k:55s} {v * 1000:8.1f} ms  {100 * v / med["distill"]:5.1f} % of the step')
    if args.json:
        from mmdet_ksdetr.utils.checkpoint_io import atomic_write
        atomic_write(args.json, lambda f: json.dump(result, f, indent=2), mode='w')
    return result


if __name__ == '__main__':
    main()
