"""Train a detector or a distiller: mmdet's ``tools/train.py`` interface, with the
mmdet_ksdetr compatibility shims (CPU/gloo distributed, safe checkpoint loading, mmrazor).

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--non-strict]
                          [--auto-scale-lr] [--cfg-options k=v ...] [--launcher pytorch]
                          [--verbose]

Training runs in :class:`mmdet_ksdetr.engine.CrashSafeRunner` (unless the config sets
``runner_type``): atomic checkpoints, ``--resume`` without a path continues from the newest
checkpoint that loads, exactly as the uninterrupted run would have. As in mmdet, a run starts
from scratch unless ``--resume``: when the work dir already holds checkpoints it says so (and
how to continue) first. Ctrl-C stops with one line naming the last checkpoint and the command
that resumes (exit status 130). The environment / config / hook-order dumps go to the log file
only, unless ``--verbose``.
"""
import argparse
import os
import os.path as osp
import shlex
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout

import mmdet_ksdetr  # noqa: E402,F401  (compat shims + registration)
from mmdet_ksdetr.utils.cfg_options import (add_tool_config_arguments,  # noqa: E402
                                            load_tool_config, parse_tool_args)

from mmdet_ksdetr.engine.auto_resume import newest_checkpoint  # noqa: E402
from mmdet_ksdetr.engine.hooks import describe_divergence  # noqa: E402
from mmdet_ksdetr.engine.build_runner import (build_runner_or_exit, set_cpu_threads,  # noqa: E402
                                              shutdown_distributed)
from mmdet_ksdetr.utils import (InputError, TrainingDivergedError,  # noqa: E402
                                check_data_paths)
from mmdet_ksdetr.utils.checks import describe_write_error  # noqa: E402
from mmdet_ksdetr.utils.checkpoint_io import CheckpointMismatchError  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a detector')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--amp', action='store_true', default=False,
                        help='enable automatic-mixed-precision training')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='enable automatically scaling LR')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from the given checkpoint, or from the latest one in the work dir when '
        'no path is given')
    add_tool_config_arguments(parser)
    return parse_tool_args(parser, argv)


def build_config(args):
    cfg = load_tool_config(args)
    if args.amp:
        if cfg.optim_wrapper.get('type', 'OptimWrapper') == 'AmpOptimWrapper':
            print('AMP training is already enabled in your config.')
        else:
            import torch
            if not torch.cuda.is_available():
                raise InputError('--amp needs a GPU (mmengine AmpOptimWrapper); '
                                 'run without --amp on CPU')
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'
    if args.auto_scale_lr:
        if 'auto_scale_lr' in cfg and 'enable' in cfg.auto_scale_lr and \
                'base_batch_size' in cfg.auto_scale_lr:
            cfg.auto_scale_lr.enable = True
        else:
            raise InputError('can not find "auto_scale_lr" or "auto_scale_lr.enable" or '
                             '"auto_scale_lr.base_batch_size" in your configuration file')
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        from mmdet_ksdetr.utils import check_checkpoint
        cfg.resume = True
        cfg.load_from = check_checkpoint(args.resume)
    check_data_paths(cfg, ('train_dataloader', 'val_dataloader'),
                     check_images=not args.skip_image_check)
    return cfg


def _is_main_rank():
    return os.environ.get('RANK', '0') == '0'


def resume_command(argv):
    """The command line of this run with ``--resume`` (what continues it)."""
    args = list(argv)
    if not any(a == '--resume' or a.startswith('--resume=') for a in args):
        args.append('--resume')
    return ' '.join(shlex.quote(a) for a in ['python', sys.argv[0]] + args)


def note_existing_checkpoints(cfg, argv):
    """A run that starts from scratch in a work dir with checkpoints says so in one line."""
    if cfg.get('resume') or not _is_main_rank():
        return
    found = newest_checkpoint(cfg.work_dir)
    if found:
        print(f'train.py: note: {osp.abspath(cfg.work_dir)} already holds checkpoints (newest: '
              f'{found}); this run starts from scratch, as mmdet does, and saves over them. '
              f'To continue from there instead: {resume_command(argv)}', file=sys.stderr,
              flush=True)


def interrupted(cfg, argv):
    """Ctrl-C: one line with the last checkpoint and the command that resumes; status 130."""
    if _is_main_rank():
        if cfg is None:
            where = 'before training started'
        else:
            found = newest_checkpoint(cfg.work_dir)
            where = (f'last checkpoint: {found}' if found else
                     f'no checkpoint saved yet in {osp.abspath(cfg.work_dir)}')
        print(f'train.py: interrupted (Ctrl-C); {where}. Resume with: {resume_command(argv)}',
              file=sys.stderr, flush=True)
    raise SystemExit(130)


def train(cfg):
    """Build the runner of ``cfg`` and train; known failures end in one line."""
    runner = None
    try:
        runner = build_runner_or_exit(cfg, 'train.py')
        runner.train()
    except (InputError, CheckpointMismatchError) as e:  # a checkpoint that cannot be used
        sys.exit(f'train.py: error: {e}')
    except (TrainingDivergedError, ValueError) as e:  # NaN/inf loss, weights or matching cost
        message = describe_divergence(runner, e) if runner is not None else None
        if message is None:
            raise
        sys.exit(f'train.py: error: {message}')
    except (OSError, RuntimeError) as e:  # disk full / unwritable work dir while saving
        message = describe_write_error(e)
        if message is None:
            raise
        sys.exit(f'train.py: error: {message}')
    shutdown_distributed()


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    cfg = None
    try:
        if args.launcher == 'none':
            set_cpu_threads()  # OMP_NUM_THREADS unset: half the CPUs (no oversubscription)
        try:
            cfg = build_config(args)
        except (InputError, FileNotFoundError) as e:
            sys.exit(f'train.py: error: {e}')
        note_existing_checkpoints(cfg, argv)
        train(cfg)
    except KeyboardInterrupt:
        interrupted(cfg, argv)


if __name__ == '__main__':
    main()
