"""Test (and evaluate) a detector checkpoint: mmdet's ``tools/test.py`` interface, with the
mmdet_ksdetr compatibility shims. Checkpoints are loaded with ``weights_only=True``.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out results.pkl]
                         [--show] [--show-dir DIR] [--non-strict] [--cfg-options k=v ...]
                         [--launcher pytorch] [--verbose]

The checkpoint must fit the model (the keys that do not are listed) unless --non-strict; a
distillation checkpoint (student under ``architecture.*``) given with a detector config, and a
non-strict load that would fill less than half of the model, stop with one line. With
``--show-dir`` the drawings' folder is printed at the end. The environment / config dumps go to
the log file only, unless ``--verbose``.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout

import mmdet_ksdetr  # noqa: E402,F401  (compat shims + registration)
from mmdet_ksdetr.utils.cfg_options import (add_tool_config_arguments,  # noqa: E402
                                            load_tool_config, parse_tool_args)

from mmdet_ksdetr.engine.build_runner import (build_runner_or_exit, set_cpu_threads,  # noqa: E402
                                              shutdown_distributed)
from mmdet_ksdetr.utils import (InputError, check_checkpoint,  # noqa: E402
                                check_data_paths)
from mmdet_ksdetr.utils.checkpoint_io import CheckpointMismatchError  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='MMDet test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir',
                        help='the directory to save the file containing evaluation metrics')
    parser.add_argument('--out', type=str,
                        help='dump predictions to a pickle file for offline evaluation')
    parser.add_argument('--show', action='store_true', help='show prediction results')
    parser.add_argument('--show-dir',
                        help='directory where painted images will be saved. If specified, it '
                        'will be automatically saved to the work_dir/timestamp/show_dir')
    parser.add_argument('--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument('--tta', action='store_true')
    add_tool_config_arguments(parser)
    return parse_tool_args(parser, argv)


def _checked_checkpoint(path):
    """A model checkpoint, or a paper's release checkpoint as downloaded (the runner converts
    it in memory for the config's model)."""
    try:
        return check_checkpoint(path)
    except InputError:
        from mmdet_ksdetr.converters.release import is_release_checkpoint
        from mmdet_ksdetr.utils.checks import load_checkpoint_safely
        if is_release_checkpoint(load_checkpoint_safely(path)):
            return path
        raise


def build_config(args):
    cfg = load_tool_config(args)
    cfg.load_from = _checked_checkpoint(args.checkpoint)
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        raise InputError('--out must be a .pkl or .pickle file')
    if args.show or args.show_dir:
        hooks = cfg.default_hooks
        if 'visualization' not in hooks:
            raise InputError('"visualization" not in default_hooks: add a '
                             'DetVisualizationHook to use --show / --show-dir')
        hooks.visualization.draw = True
        if args.show:
            hooks.visualization.show = True
            hooks.visualization.wait_time = args.wait_time
        if args.show_dir:
            hooks.visualization.test_out_dir = args.show_dir
    if args.tta:
        if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
            raise InputError('--tta needs "tta_model" and "tta_pipeline" in the config')
        cfg.model = dict(**cfg.tta_model, module=cfg.model)
        test_data_cfg = cfg.test_dataloader.dataset
        while 'dataset' in test_data_cfg:
            test_data_cfg = test_data_cfg['dataset']
        test_data_cfg.pipeline = cfg.tta_pipeline
    check_data_paths(cfg, ('test_dataloader', ), check_images=not args.skip_image_check)
    return cfg


def drawings_folder(runner, show_dir):
    """The absolute folder ``--show-dir`` drawings went to: mmdet's visualization hook puts a
    relative ``--show-dir`` under ``<work_dir>/<timestamp>/``."""
    for hook in runner.hooks:
        out = getattr(hook, 'test_out_dir', None)
        if isinstance(out, str) and osp.isabs(out):
            return out
    return osp.abspath(osp.join(runner.work_dir, runner.timestamp, show_dir))


def main(argv=None):
    args = parse_args(argv)
    if args.launcher == 'none':
        set_cpu_threads()  # OMP_NUM_THREADS unset: half the CPUs, not all (no oversubscription)
    try:
        cfg = build_config(args)
    except (InputError, FileNotFoundError) as e:
        sys.exit(f'test.py: error: {e}')
    from mmdet.evaluation import DumpDetResults
    runner = build_runner_or_exit(cfg, 'test.py')
    if args.out is not None:
        runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=args.out))
    try:
        metrics = runner.test()
    except (InputError, CheckpointMismatchError) as e:  # a checkpoint that does not fit
        sys.exit(f'test.py: error: {e}')
    except KeyboardInterrupt:
        sys.stderr.write('test.py: interrupted (Ctrl-C)\n')
        raise SystemExit(130)
    if args.show_dir and os.environ.get('RANK', '0') == '0':
        print(f'test.py: drawings saved in {drawings_folder(runner, args.show_dir)}')
    shutdown_distributed()
    return metrics


if __name__ == '__main__':
    main()
