"""What the benchmark tools (``tools/analysis_tools/benchmark_train.py``,
``benchmark_distill.py``, ``tprd_refinement_cost.py``) share: the ``--timer`` choice and its
clock, device synchronisation, timers around callables, a random-init model built from a config
(nothing downloaded) and synthetic training batches. The tools import it; no tool imports
another tool."""
import time

import torch

from mmdet_ksdetr.utils.checks import check_config_path


def add_timer_argument(parser):
    """``--timer {wall,cpu}`` and ``--verbose``, shared by the benchmark tools."""
    parser.add_argument('--timer', choices=['wall', 'cpu'], default='wall',
                        help='wall clock, or CPU time of this process (CPU only: robust to '
                        'other jobs sharing the cores; use with --threads 1)')
    parser.add_argument('--verbose', action='store_true',
                        help="also print mmengine's model-building and weight-init logs")


def quiet_build_logs(verbose: bool) -> None:
    """Without ``verbose``, only warnings of mmengine's logger reach the terminal (a model's
    weight-init report alone is several lines per parameter), and the known noise of
    :mod:`mmdet_ksdetr.quiet` is dropped either way."""
    from mmengine.logging import MMLogger

    from mmdet_ksdetr.quiet import quiet_logger
    logger = quiet_logger(MMLogger.get_current_instance())
    if not verbose:
        logger.setLevel('WARNING')


def timer_clock(parser, args):
    """The clock ``--timer`` asks for: ``time.perf_counter`` or, for ``cpu``,
    ``time.process_time`` (refused on an accelerator, whose work it would not count). Also
    applies ``--verbose`` (:func:`quiet_build_logs`): every tool calls this after parsing."""
    quiet_build_logs(getattr(args, 'verbose', False))
    if args.timer == 'wall':
        return time.perf_counter
    if torch.device(args.device).type != 'cpu':
        parser.error('--timer cpu measures CPU time: use it with --device cpu')
    return time.process_time


def sync(device):
    """Wait for queued CUDA work, so that a clock reading covers it (no-op on CPU)."""
    if str(device).startswith('cuda'):
        torch.cuda.synchronize()


def _strip_downloads(node):
    """Remove pretrained-weight loading (nothing is downloaded; weights stay random)."""
    if isinstance(node, dict):
        init = node.get('init_cfg')
        if isinstance(init, dict) and init.get('type') == 'Pretrained':
            node['init_cfg'] = None
        if 'teacher_ckpt' in node:
            node['teacher_ckpt'] = None
        for v in node.values():
            _strip_downloads(v)
    elif isinstance(node, (list, tuple)):
        for v in node:
            _strip_downloads(v)


def parse_cfg_options(options):
    """``['key=value', ...]`` (``--cfg-options``) to a dict for ``Config.merge_from_dict``."""
    from mmengine.config import DictAction
    parsed = {}
    for kv in options:
        key, val = kv.split('=', maxsplit=1)
        parsed[key] = DictAction._parse_iterable(val)
    return parsed


def build_model(config, cfg_options, device):
    """Build the model and its optimizer wrapper from a config (random init)."""
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import MODELS, init_default_scope
    cfg = Config.fromfile(check_config_path(config))
    if cfg_options:
        cfg.merge_from_dict(parse_cfg_options(cfg_options))
    _strip_downloads(cfg._cfg_dict)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model = MODELS.build(cfg.model)
    if hasattr(model, 'init_weights'):
        model.init_weights()
    model = model.to(device)
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    return cfg, model, optim_wrapper


def make_batches(n, batch_size, img_size, num_gts, num_classes, seed):
    """``n`` synthetic batches in the dataloader format (uint8 CHW images + DetDataSample)."""
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    gen = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(n):
        inputs, samples = [], []
        for _ in range(batch_size):
            inputs.append(torch.randint(0, 256, (3, img_size, img_size), generator=gen,
                                        dtype=torch.uint8))
            xy = torch.rand(num_gts, 2, generator=gen) * img_size * 0.7
            wh = (torch.rand(num_gts, 2, generator=gen) * 0.25 + 0.05) * img_size
            boxes = torch.cat([xy, (xy + wh).clamp(max=img_size - 1)], dim=1)
            sample = DetDataSample(metainfo=dict(
                img_id=0, img_path='', ori_shape=(img_size, img_size),
                img_shape=(img_size, img_size), scale_factor=(1.0, 1.0), flip=False,
                flip_direction=None))
            sample.gt_instances = InstanceData(
                bboxes=boxes, labels=torch.randint(0, num_classes, (num_gts, ), generator=gen))
            samples.append(sample)
        batches.append(dict(inputs=inputs, data_samples=samples))
    return batches


def num_classes(cfg):
    """The first integer ``num_classes`` in the config's model (80 if there is none)."""

    def find(node):
        if isinstance(node, dict):
            if 'num_classes' in node and isinstance(node['num_classes'], int):
                return node['num_classes']
            for v in node.values():
                found = find(v)
                if found:
                    return found
        return None

    return find(cfg._cfg_dict.get('model', {})) or 80


def output_file(path):
    """``argparse`` type of a result file (``--json``, ``--table``): refused before the
    measurement starts when it cannot be written (a folder, a missing folder)."""
    import argparse

    from mmdet_ksdetr.utils.checkpoint_io import OutputPathError, check_output_path
    try:
        return check_output_path(path)
    except OutputPathError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def interleaved_medians(fns, runs=9, warmup=1, clock=time.process_time, device='cpu',
                        rotate=False):
    """Median seconds of each callable of ``fns`` (a dict name -> callable), timed ``runs``
    times in turn (run 1 of every callable, then run 2, ...) after ``warmup`` untimed rounds,
    so that a slow phase of a shared machine hits all of them alike. With ``rotate``, round
    ``r`` starts at the ``r``-th callable (no callable always runs first, right after the
    slowest one). Returns name -> seconds."""
    import statistics
    times = {name: [] for name in fns}
    names = list(fns)
    for r in range(warmup + runs):
        shift = r % len(names) if rotate and names else 0
        for name in names[shift:] + names[:shift]:
            fn = fns[name]
            sync(device)
            start = clock()
            fn()
            sync(device)
            if r >= warmup:
                times[name].append(clock() - start)
    return {name: statistics.median(t) for name, t in times.items()}
