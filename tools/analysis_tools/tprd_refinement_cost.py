"""Share of a distillation training step spent in TPRD (teacher-to-GT Hungarian assignment and
the vectorised refinement), measured inside real training steps of a TPRD config.

    python tools/analysis_tools/tprd_refinement_cost.py CONFIG [--iters 10] [--warmup 3] \
        [--img-size 512] [--batch-size 2] [--num-gts 6] [--cfg-options k=v ...]

The model is built with random weights (nothing downloaded) and trained on the synthetic
batches of ``benchmark_train.py`` (``mmdet_ksdetr.utils.benchmark``); the two TPRD functions
are wrapped with timers for the run (the library is not modified). Printed: median step time,
median time of the assignment and of the refinement per step, and their share of the step.
"""
import argparse
import os.path as osp
import statistics
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))  # call_timers beside this tool
from call_timers import CallTimers  # noqa: E402
import mmdet_ksdetr  # noqa: E402,F401
from mmdet_ksdetr.utils.benchmark import (add_timer_argument,  # noqa: E402
                                          build_model, make_batches, num_classes, sync,
                                          timer_clock)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('config')
    p.add_argument('--iters', type=int, default=10)
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--img-size', type=int, default=512)
    p.add_argument('--batch-size', type=int, default=2)
    p.add_argument('--num-gts', type=int, default=6)
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--threads', type=int, default=None)
    add_timer_argument(p)
    p.add_argument('--cfg-options', nargs='+', default=[])
    args = p.parse_args(argv)
    clock = timer_clock(p, args)
    if args.threads:
        torch.set_num_threads(args.threads)

    from mmdet_ksdetr.distill.tprd import refinement
    cfg, model, optim = build_model(args.config, args.cfg_options, args.device)
    if not getattr(model, 'tprd', False):
        sys.exit(f'{args.config}: the model has no TPRD switch on (model.tprd=True needed)')
    timers = CallTimers(args.device, clock)
    timers.wrap(refinement, 'assign_teacher_layers', 'assign')
    timers.wrap(refinement, 'refine_teacher_predictions', 'refine')
    timers.active = True
    batches = make_batches(args.iters + args.warmup, args.batch_size, args.img_size,
                           args.num_gts, num_classes(cfg), 0)
    steps, assign, refine = [], [], []
    model.train()
    for i, batch in enumerate(batches):
        timers.totals.clear()
        sync(args.device)
        start = clock()
        model.train_step(batch, optim)
        sync(args.device)
        if i >= args.warmup:
            steps.append(clock() - start)
            assign.append(timers.totals['assign'])
            refine.append(timers.totals['refine'])
    med = statistics.median
    step, a, r = med(steps), med(assign), med(refine)
    print(f'{osp.basename(args.config)} on {args.device}, {args.img_size}px x '
          f'{args.batch_size}, {args.iters} steps: step {step:.3f}s | teacher-GT assignment '
          f'{a * 1e3:.1f}ms ({100 * a / step:.2f}%) | refinement {r * 1e3:.1f}ms '
          f'({100 * r / step:.2f}%) | TPRD total {100 * (a + r) / step:.2f}% '
          f'[{torch.get_num_threads()} threads, {args.timer} time]')
    return dict(step_s=step, assign_s=a, refine_s=r, share=(a + r) / step)


if __name__ == '__main__':
    main()
