"""Check an install end to end on this machine's GPU (or CPU): every toy config trains, predicts
and keeps its speed ratio, and the KS deformable attention's CUDA kernel agrees with its CPU form.

    python tools/misc/gpu_check.py [--device cuda|cpu] [--configs PATTERN ...]
                                   [--families FAMILY ...] [--iters 2] [--skip-timing]
                                   [--checks train amp dist predict timing msda]
                                   [--data-root DIR] [--work-dir DIR] [--out result.json]
                                   [--overhead PAPER ...]

Per toy config (``configs/toy/*.py``: family ``baselines``; ``configs/toy/<family>/*.py``;
distillers get a random teacher, ``model.teacher_ckpt=None``):

* ``train fp32``: ``--iters`` training iterations (batch 2) on the toy data, in this process
  with the runner ``tools/train.py`` uses; the loss must stay finite and a checkpoint be saved;
* ``train amp``: the same with mmengine's ``AmpOptimWrapper`` (CUDA only: mmengine 0.10.7's
  AMP wrapper refuses a machine without CUDA, so on CPU the row says ``skipped (CUDA only)``);
* ``train dist x2``: ``tools/dist_train.sh CFG 2`` when two CUDA GPUs are visible;
* ``predict``: that checkpoint loaded into a new runner and tested on ``--val-images`` images;
* ``timing``: a KS-DETR / DAC-DETR config against the toy config it extends
  (``tools/analysis_tools/benchmark_train.py BASE NEW``: ratio of training-step medians), a
  distiller as ``distill / (student + teacher)`` (``benchmark_distill.py``); CUDA-synchronised
  wall time on a GPU, CPU time of one thread on CPU.

Once: ``ks msda cuda vs cpu`` compares the outputs and gradients of
:class:`KSMultiScaleDeformableTripleAttention` on CUDA (mmcv's compiled kernel) with the CPU
path, in each mode (``skipped (no CUDA)`` on CPU).

With ``--overhead PAPER ...`` (or ``all``): ``tools/analysis_tools/overhead.py --suite PAPER
...`` on the full-size configs on this device (the GPU column of the docs' training-overhead
tables); its markdown table goes to ``<work-dir>/overhead.md``.

Prints a table ``config | check | status | seconds / ratio | detail`` and exits 1 if any check
failed. The toy data is made in ``--data-root`` (default: a temporary folder). Each check's
output goes to ``<work-dir>/<config>/<check>.log``; a failure prints the end of it.
"""
import argparse
import contextlib
import copy
import fnmatch
import functools
import glob
import json
import os
import os.path as osp
import socket
import subprocess
import sys
import tempfile
import time
import traceback

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOY = osp.join(ROOT, 'configs', 'toy')
BENCH = osp.join(ROOT, 'tools', 'analysis_tools')
PASS, FAIL = 'PASS', 'FAIL'
CHECK_CHOICES = ['train', 'amp', 'dist', 'predict', 'timing', 'msda']


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', choices=['cuda', 'cpu'], default=None,
                        help='default: cuda when a GPU is visible, else cpu')
    parser.add_argument('--configs', nargs='+', default=None, metavar='PATTERN',
                        help='only toy configs whose path under configs/toy/ matches one of '
                        'these shell patterns (e.g. "ks_detr/*" "*dab*"); a path to a .py '
                        'file adds that config')
    parser.add_argument('--families', nargs='+', default=None,
                        help='only these families: baselines (configs/toy/*.py) or a folder '
                        'of configs/toy/ (ks_detr, dac_detr, kd_detr, ...); commas allowed')
    parser.add_argument('--iters', type=int, default=2, help='training iterations per check')
    parser.add_argument('--val-images', type=int, default=4, help='images the predict check tests')
    parser.add_argument('--timing-iters', type=int, default=3,
                        help='timed iterations per model (after 1 warm-up)')
    parser.add_argument('--checks', nargs='+', choices=CHECK_CHOICES, default=CHECK_CHOICES,
                        help='which checks to run (default: all); predict needs train')
    parser.add_argument('--skip-timing', action='store_true', help='no timing rows')
    parser.add_argument('--data-root', help='toy data folder (made here if it has no '
                        'annotations; default: a temporary folder)')
    parser.add_argument('--work-dir', help='work dirs and logs (default: a temporary folder, '
                        'removed at the end)')
    parser.add_argument('--out', help='also write the results to this JSON file (atomically)')
    parser.add_argument('--overhead', nargs='+', metavar='PAPER',
                        help='also run tools/analysis_tools/overhead.py --suite PAPER ... '
                        '(full-size configs; "all" for every paper); table in '
                        '<work-dir>/overhead.md')
    args = parser.parse_args(argv)
    if args.iters < 1 or args.val_images < 1 or args.timing_iters < 1:
        parser.error('--iters, --val-images and --timing-iters must be >= 1')
    args.checks = set(args.checks) - ({'timing'} if args.skip_timing else set())
    if args.families:
        args.families = [f for item in args.families for f in item.split(',') if f]
    return args


def toy_configs(patterns=None, families=None):
    """``[(family, path)]`` of the selected toy configs, sorted; an empty selection or an
    unknown family raises ``ValueError`` with what exists."""
    found = [('baselines', p) for p in glob.glob(osp.join(TOY, '*.py'))]
    found += [(osp.basename(osp.dirname(p)), p) for p in glob.glob(osp.join(TOY, '*', '*.py'))]
    known = sorted({fam for fam, _ in found})
    if families:
        unknown = sorted(set(families) - set(known))
        if unknown:
            raise ValueError(f'unknown --families {", ".join(unknown)}; choose from '
                             f'{", ".join(known)}')
        found = [(fam, p) for fam, p in found if fam in families]
    if patterns:
        files = [osp.abspath(p) for p in patterns if p.endswith('.py') and osp.isfile(p)]
        found = [(fam, p) for fam, p in found if p not in files and
                 any(fnmatch.fnmatch(osp.relpath(p, TOY), pat) for pat in patterns)]
        found += [(osp.basename(osp.dirname(p)), p) for p in files]  # any config file
    if not found:
        raise ValueError(f'no toy config matches --configs {patterns} --families {families}')
    return sorted(found, key=lambda fp: osp.relpath(fp[1], TOY))


def config_name(path):
    """The config's path under ``configs/toy/`` (else its file name) without ``.py``: the
    table's first column."""
    rel = osp.relpath(path, TOY)
    return osp.splitext(osp.basename(path) if rel.startswith('..') else rel)[0]


def is_distiller(cfg):
    """Whether a loaded config is an mmrazor distiller (it has a teacher)."""
    return isinstance(cfg.model, dict) and 'teacher' in cfg.model


def toy_baseline(path):
    """The toy config a KS-DETR / DAC-DETR toy config extends (its ``_base_`` under
    configs/toy/), or None."""
    from mmengine.config import Config
    for base in Config._get_base_files(path):
        full = osp.normpath(osp.join(osp.dirname(path), base))
        if osp.isfile(full) and osp.dirname(full) == TOY:
            return full
    return None


@functools.lru_cache(maxsize=None)
def quick_text_config_class():
    """A :class:`mmengine.config.Config` whose ``pretty_text`` is a plain ``key = value``
    listing: the runner logs, dumps and stores the config text up to nine times per run, and
    the yapf formatting of each copy costs seconds of CPU, more than a short check's training
    (the copy in the work dir is then a listing, not formatted source)."""
    from mmengine.config import Config

    class QuickTextConfig(Config):

        @property
        def pretty_text(self):
            return ''.join(f'{k} = {v!r}\n' for k, v in self.to_dict().items())

    return QuickTextConfig


def run_config(path, data_root, work_dir, iters, overrides=None):
    """The config of ``path`` set up for a short run: ``iters`` iterations of one epoch on the
    first ``2 * iters`` toy training images, no validation, random teacher."""
    from mmengine.config import Config

    from mmdet_ksdetr.utils.data_root import merge_cfg_options
    cfg = Config.fromfile(path)
    options = {'data_root': data_root, 'train_cfg.max_epochs': 1, 'train_cfg.val_begin': 2,
               'train_dataloader.dataset.indices': 2 * iters,
               'train_dataloader.batch_size': 2, 'default_hooks.logger.interval': 1,
               'randomness.seed': 0}
    if is_distiller(cfg):
        options['model.teacher_ckpt'] = None
    options.update(overrides or {})
    merge_cfg_options(cfg, options)
    cfg = quick_text_config_class()(cfg.to_dict(), cfg_text=cfg.text, filename=cfg.filename)
    cfg.work_dir = work_dir
    cfg.launcher = 'none'
    cfg.experiment_name = f'{osp.basename(work_dir)}_{time.time_ns()}'  # own logger per run
    return cfg


@contextlib.contextmanager
def output_to(log_path):
    """Send everything written to stdout / stderr (Python and C level) to ``log_path``."""
    sys.stdout.flush(), sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_path, 'ab') as log:
        os.dup2(log.fileno(), 1), os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush(), sys.stderr.flush()
            os.dup2(saved[0], 1), os.dup2(saved[1], 2)
            os.close(saved[0]), os.close(saved[1])


def log_tail(log_path, lines=15):
    """The last ``lines`` lines of a check's log."""
    if not osp.isfile(log_path):
        return ''
    with open(log_path, errors='replace') as f:
        return ''.join(f.readlines()[-lines:])


def train_in_process(path, args, work_dir, amp=False):
    """Train ``--iters`` iterations; returns a detail line (last loss)."""
    import math

    from mmdet_ksdetr.engine.build_runner import build_runner
    cfg = run_config(path, args.data_root, work_dir, args.iters)
    if amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    runner = build_runner(cfg)
    runner.train()
    loss = runner.message_hub.get_scalar('train/loss').current()
    if not math.isfinite(loss):
        raise RuntimeError(f'loss is {loss} after {args.iters} iterations')
    if not osp.isfile(osp.join(work_dir, 'epoch_1.pth')):
        raise RuntimeError(f'no checkpoint epoch_1.pth in {work_dir}')
    return f'loss {loss:.3f} after {args.iters} iters'


def predict_in_process(path, args, work_dir, ckpt):
    """Load the trained checkpoint into a new runner and test it on ``--val-images`` images."""
    from mmdet_ksdetr.engine.build_runner import build_runner
    cfg = run_config(path, args.data_root, work_dir, args.iters,
                     {'test_dataloader.dataset.indices': args.val_images})
    cfg.load_from = ckpt
    metrics = build_runner(cfg).test()
    key = next((k for k in metrics if k.endswith('bbox_mAP')), None)
    if key is None:
        raise RuntimeError(f'the test returned no bbox mAP: {metrics}')
    return f'{key} {metrics[key]:.3f} on {args.val_images} val images'


def free_port():
    """A free TCP port on localhost for the distributed rendezvous."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def run_logged(cmd, log_path, env=None):
    """Run ``cmd`` from the repository root with its output appended to ``log_path``; a
    non-zero exit raises ``RuntimeError``."""
    with open(log_path, 'ab') as log:
        rc = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env=dict(os.environ, **(env or {}))).returncode
    if rc != 0:
        raise RuntimeError(f'{osp.basename(cmd[1])} exited with {rc}')


def train_dist(path, args, work_dir, log_path):
    """``tools/dist_train.sh CFG 2`` for ``--iters`` iterations (batch 2 per GPU)."""
    from mmengine.config import Config
    opts = ['data_root=' + args.data_root, 'train_cfg.max_epochs=1', 'train_cfg.val_begin=2',
            f'train_dataloader.dataset.indices={4 * args.iters}',  # 2 ranks share the data
            'randomness.seed=0']
    if is_distiller(Config.fromfile(path)):
        opts.append('model.teacher_ckpt=None')
    run_logged(['bash', osp.join(ROOT, 'tools', 'dist_train.sh'), path, '2', '--work-dir',
                work_dir, '--cfg-options', *opts], log_path, env={'PORT': str(free_port())})
    if not osp.isfile(osp.join(work_dir, 'epoch_1.pth')):
        raise RuntimeError(f'no checkpoint epoch_1.pth in {work_dir}')
    return f'{args.iters} iters on 2 GPUs'


def timing(path, args, work_dir, log_path):
    """``(ratio, seconds, detail)``: the method's step time against its baseline, measured by
    the benchmark tools, or None when the config is a baseline."""
    from mmengine.config import Config
    common = ['--img-size', '160', '--batch-size', '2', '--iters', str(args.timing_iters),
              '--warmup', '1', '--device', args.device]
    if args.device == 'cpu':
        common += ['--timer', 'cpu', '--threads', '1']
    out = osp.join(work_dir, 'timing.json')
    if is_distiller(Config.fromfile(path)):
        run_logged([sys.executable, osp.join(BENCH, 'benchmark_distill.py'), path, *common,
                    '--json', out], log_path)
        with open(out) as f:
            res = json.load(f)
        med = res['median_s']
        return res['ratio'], med['distill'], (
            f'distill / (student + teacher): {med["distill"] * 1e3:.0f} / '
            f'({med["student"] * 1e3:.0f} + {med["teacher"] * 1e3:.0f}) ms')
    base = toy_baseline(path)
    if base is None or osp.dirname(path) == TOY:
        return None
    run_logged([sys.executable, osp.join(BENCH, 'benchmark_train.py'), base, path, *common,
                '--no-memory', '--json', out], log_path)
    with open(out) as f:
        res = json.load(f)
    b, n = (m['train']['median_s'] for m in res['models'])
    return res['train_ratio'], n, (f'train step vs {config_name(base)}: '
                                   f'{n * 1e3:.0f} / {b * 1e3:.0f} ms')


def overhead_tables(args, log_path):
    """``overhead.py --suite ...`` on this device; its markdown table in
    ``<work-dir>/overhead.md``."""
    out = osp.join(args.work_dir, 'overhead.md')
    cmd = [sys.executable, osp.join(BENCH, 'overhead.py'), '--suite', *args.overhead,
           '--device', args.device, '--table', out]
    run_logged(cmd + (['--threads', '1'] if args.device == 'cpu' else []), log_path)
    return f'table in {out}'


def release_cuda_memory():
    """Free what the last check left on the GPU (its runner and model are unreachable now),
    so that later configs start from an empty cache."""
    torch = sys.modules.get('torch')
    if torch is not None and torch.cuda.is_initialized():
        import gc
        gc.collect()
        torch.cuda.empty_cache()


class Report:
    """The result rows; prints each as it comes."""

    def __init__(self):
        self.rows = []

    def add(self, config, check, status, seconds=None, ratio=None, detail=''):
        row = dict(config=config, check=check, status=status, seconds=seconds, ratio=ratio,
                   detail=detail)
        self.rows.append(row)
        print(f'[{len(self.rows):3d}] {config:58s} {check:20s} {status}', flush=True)
        return row

    def run(self, config, check, log_path, fn):
        """Run ``fn()`` (returns a detail string) with its output in ``log_path``: a PASS row,
        or a FAIL row with the exception and the end of the log printed."""
        start = time.perf_counter()
        try:
            with output_to(log_path):
                try:
                    detail = fn()
                except BaseException:
                    traceback.print_exc()
                    raise
        except (Exception, SystemExit) as e:
            release_cuda_memory()
            row = self.add(config, check, FAIL, time.perf_counter() - start,
                           detail=f'{type(e).__name__}: {e}'.splitlines()[0][:200])
            print(f'      --- end of {log_path} ---\n{log_tail(log_path)}', flush=True)
            return row
        release_cuda_memory()
        return self.add(config, check, PASS, time.perf_counter() - start, detail=detail)

    def failed(self):
        return [r for r in self.rows if r['status'] == FAIL]

    def table(self):
        """The rows as a text table."""
        def cell(row):
            if row['ratio'] is not None:
                return f'ratio {row["ratio"]:.2f}'
            return f'{row["seconds"]:.1f} s' if row['seconds'] is not None else '-'

        lines = [('config', 'check', 'status', 'seconds / ratio', 'detail')]
        lines += [(r['config'], r['check'], r['status'], cell(r), r['detail'])
                  for r in self.rows]
        widths = [max(len(line[i]) for line in lines) for i in range(4)]
        return '\n'.join('  '.join(c.ljust(w) for c, w in zip(line[:4], widths)) + '  ' +
                         line[4] for line in lines)


def check_config(family, path, args, report):
    """All the per-config checks of one toy config."""
    name = config_name(path)
    work = osp.join(args.work_dir, name.replace('/', '__'))
    os.makedirs(work, exist_ok=True)
    log = osp.join(work, '{}.log').format
    cuda = args.device == 'cuda'
    checks = args.checks
    trained = None
    if 'train' in checks:
        trained = report.run(name, 'train fp32', log('train_fp32'),
                             lambda: train_in_process(path, args, osp.join(work, 'fp32')))
    if 'amp' in checks and cuda:
        report.run(name, 'train amp', log('train_amp'),
                   lambda: train_in_process(path, args, osp.join(work, 'amp'), amp=True))
    elif 'amp' in checks:
        report.add(name, 'train amp', 'skipped (CUDA only)',
                   detail="mmengine's AmpOptimWrapper needs CUDA")
    if 'dist' in checks and cuda and args.gpus >= 2:
        report.run(name, 'train dist x2', log('train_dist'),
                   lambda: train_dist(path, args, osp.join(work, 'dist'), log('train_dist')))
    elif 'dist' in checks:
        report.add(name, 'train dist x2', 'skipped (needs 2 CUDA GPUs)')
    ckpt = osp.join(work, 'fp32', 'epoch_1.pth')
    if 'predict' in checks and trained is not None and trained['status'] == PASS:
        report.run(name, 'predict', log('predict'),
                   lambda: predict_in_process(path, args, osp.join(work, 'predict'), ckpt))
    elif 'predict' in checks:
        report.add(name, 'predict', 'skipped (needs train fp32)' if trained is None else
                   'skipped (train fp32 failed)')
    if 'timing' in checks:
        timing_row(name, path, args, work, log('timing'), report)


def timing_row(name, path, args, work, log_path, report):
    """The timing row of a method config (none for a baseline)."""
    result = {}

    def measure():
        result['value'] = timing(path, args, work, log_path)
        return result['value'][2] if result['value'] else ''

    row = report.run(name, 'timing', log_path, measure)
    if row['status'] == PASS:
        if result['value'] is None:
            report.rows.remove(row)  # a baseline: nothing to compare with
        else:
            row['ratio'], row['seconds'] = result['value'][:2]


def msda_cuda_vs_cpu(atol=1e-4, rtol=1e-4):
    """Outputs and gradients (parameters and inputs) of the KS deformable triple attention on
    CUDA (mmcv's compiled kernel) against the CPU path, for each mode. Returns a detail line;
    raises ``AssertionError`` naming the first tensor that differs."""
    import torch

    from mmdet_ksdetr.models.ks_detr.ks_deformable_triple_attention import \
        KSMultiScaleDeformableTripleAttention
    worst = 0.0
    for mode in ('triple', 'dual_share_v', 'dual_share_a'):
        torch.manual_seed(0)
        module = KSMultiScaleDeformableTripleAttention(
            embed_dims=32, num_heads=4, num_levels=2, num_points=4, batch_first=True, mode=mode)
        for lin in (module.sampling_offsets, module.attention_weights):
            torch.nn.init.normal_(lin.weight, std=0.1)  # non-trivial locations and weights
        module.eval()  # dropout off: both paths see the same function
        inputs = msda_inputs()
        cpu = msda_forward_backward(module, inputs, 'cpu')
        tf32 = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False  # the projections in full fp32 too
        try:
            gpu = msda_forward_backward(module, inputs, 'cuda')
        finally:
            torch.backends.cuda.matmul.allow_tf32 = tf32
        for key, ref in cpu.items():
            got = gpu[key].cpu()
            diff = (got - ref).abs().max().item()
            worst = max(worst, diff)
            if not torch.allclose(got, ref, atol=atol, rtol=rtol):
                raise AssertionError(f'{mode}: {key} differs between CUDA and CPU by up to '
                                     f'{diff:.2e} (atol {atol}, rtol {rtol})')
    return f'3 modes, outputs and gradients: max |CUDA - CPU| {worst:.1e}'


def msda_inputs(batch=2, dims=32):
    """Random inputs of a 2-level map (10x8 and 5x4) with padding in the second image."""
    import torch
    gen = torch.Generator().manual_seed(1)
    shapes = torch.tensor([[10, 8], [5, 4]])
    n = int((shapes[:, 0] * shapes[:, 1]).sum())
    mask = torch.zeros(batch, n, dtype=torch.bool)
    mask[-1, 60:80] = True
    return dict(query=torch.randn(batch, n, dims, generator=gen),
                teacher_query=torch.randn(batch, n, dims, generator=gen),
                query_pos=torch.randn(batch, n, dims, generator=gen),
                reference_points=torch.rand(batch, n, 2, 2, generator=gen),
                key_padding_mask=mask, spatial_shapes=shapes,
                level_start_index=torch.tensor([0, 80]),
                out_weights=torch.randn(3, batch, n, dims, generator=gen))


def msda_forward_backward(module, inputs, device):
    """Every stream's output and every gradient of a weighted sum of them, on ``device``."""
    import torch
    module = copy.deepcopy(module).to(device)
    ins = {k: v.to(device) for k, v in inputs.items()}
    leaves = {k: ins[k].requires_grad_() for k in ('query', 'teacher_query', 'query_pos')}
    weights = ins.pop('out_weights')
    outs = module(**ins)
    loss = sum((out * w).sum() for out, w in zip(outs, weights))
    loss.backward()
    result = {f'output {i}': out.detach() for i, out in enumerate(outs)}
    result.update({f'grad {k}': v.grad for k, v in leaves.items()})
    result.update({f'grad {k}': p.grad for k, p in module.named_parameters()
                   if p.grad is not None})
    return {k: v.detach().to('cpu', torch.float32) for k, v in result.items()}


def make_data(data_root, log_path):
    """The toy COCO set (16 train / 8 val images) in ``data_root`` unless it is there."""
    if osp.isfile(osp.join(data_root, 'annotations', 'instances_val.json')):
        return
    run_logged([sys.executable, osp.join(ROOT, 'tools', 'misc', 'make_toy_coco.py'), '--out',
                data_root, '--num-train', '16', '--num-val', '8'], log_path)


def environment(args):
    """Device, versions and GPU names for the report header."""
    import mmcv
    import torch
    env = dict(device=args.device, torch=torch.__version__, torch_cuda=torch.version.cuda,
               mmcv=mmcv.__version__, gpus=[])
    if args.device == 'cuda':
        env['gpus'] = [torch.cuda.get_device_name(i) for i in range(args.gpus)]
    return env


def write_json(path, result):
    """Write ``result`` to ``path`` atomically."""
    from mmdet_ksdetr.utils.checkpoint_io import atomic_write
    text = json.dumps(result, indent=2).encode()
    atomic_write(path, lambda f: f.write(text))


def main(argv=None):
    args = parse_args(argv)
    try:
        configs = toy_configs(args.configs, args.families)  # before the slow imports
    except ValueError as e:
        sys.exit(f'gpu_check.py: error: {e}')
    if args.device == 'cpu':
        os.environ['CUDA_VISIBLE_DEVICES'] = ''  # before torch touches CUDA: a CPU-only run
    sys.path.insert(0, ROOT)
    import torch

    import mmdet_ksdetr  # noqa: F401  (compat + registration)
    if args.device is None:
        args.device = 'cuda' if torch.cuda.is_available() else 'cpu'
    if args.device == 'cuda' and not torch.cuda.is_available():
        sys.exit(f'gpu_check.py: error: --device cuda but torch {torch.__version__} sees no '
                 f'CUDA GPU; install the CUDA build (bash tools/install.sh --cuda) or use '
                 f'--device cpu')
    args.gpus = torch.cuda.device_count() if args.device == 'cuda' else 0
    if args.device == 'cpu':
        from mmdet_ksdetr.engine.build_runner import set_cpu_threads
        set_cpu_threads()
    with contextlib.ExitStack() as stack:
        if args.work_dir is None:
            args.work_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix='gpu_check_'))
        os.makedirs(args.work_dir, exist_ok=True)
        args.work_dir = osp.abspath(args.work_dir)
        args.data_root = osp.abspath(args.data_root or osp.join(args.work_dir, 'toy_coco'))
        args.data_root = args.data_root.rstrip('/') + '/'
        report = Report()
        env = environment(args)
        print(f'gpu_check: {len(configs)} toy configs on {args.device} '
              f'{", ".join(env["gpus"])} (torch {env["torch"]}, CUDA {env["torch_cuda"]}, '
              f'mmcv {env["mmcv"]}); logs in {args.work_dir}', flush=True)
        data = report.run('-', 'toy data', osp.join(args.work_dir, 'toy_data.log'),
                          lambda: make_data(args.data_root, osp.join(args.work_dir,
                                                                     'toy_data.log')) or '')
        if 'msda' in args.checks:
            if args.device == 'cuda':
                report.run('-', 'ks msda cuda vs cpu', osp.join(args.work_dir, 'msda.log'),
                           msda_cuda_vs_cpu)
            else:
                report.add('-', 'ks msda cuda vs cpu', 'skipped (no CUDA)')
        if data['status'] == PASS:
            for family, path in configs:
                check_config(family, path, args, report)
        if args.overhead:
            log = osp.join(args.work_dir, 'overhead.log')
            report.run('-', 'overhead ' + ' '.join(args.overhead), log,
                       lambda: overhead_tables(args, log))
        print('\n' + report.table())
        failed = report.failed()
        print(f'\n{len(failed)} of {len(report.rows)} checks failed' if failed else
              f'\nall {len(report.rows)} checks passed or were skipped as shown')
        if args.out:
            write_json(args.out, dict(environment=env, rows=report.rows,
                                      failed=len(failed)))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
