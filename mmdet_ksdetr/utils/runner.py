"""Runner construction shared by tools/train.py and tools/test.py (as mmdet's tools do it)."""
import os


def build_runner(cfg):
    """The Runner of ``cfg``: :class:`~mmdet_ksdetr.engine.CrashSafeRunner` (atomic checkpoints,
    exact auto-resume, strict ``weights_only`` loading) unless the config names a registered
    ``runner_type``, which is then built as mmdet's tools do. A ``DivergenceHook`` joins
    ``cfg.custom_hooks`` unless the config has one."""
    from mmdet.utils import setup_cache_size_limit_of_dynamo
    from mmengine.registry import RUNNERS

    from mmdet_ksdetr.engine import CrashSafeRunner
    setup_cache_size_limit_of_dynamo()
    hooks = list(cfg.get('custom_hooks') or [])
    names = [str(h.get('type') if isinstance(h, dict) else h) for h in hooks]
    if not any('DivergenceHook' in name for name in names):
        cfg.custom_hooks = hooks + [dict(type='DivergenceHook')]  # a diverging run stops clearly
    if 'runner_type' not in cfg:
        return CrashSafeRunner.from_cfg(cfg)
    return RUNNERS.build(cfg)


def shutdown_distributed():
    """Tear the default process group down before the interpreter exits.

    Without it a gloo process can abort at exit ("terminate called without an active
    exception", SIGABRT) after a finished run, which torchrun reports as a failed job."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def set_cpu_threads(environ=os.environ):
    """A single-process run whose user did not set ``OMP_NUM_THREADS`` gets half the CPUs this
    process may use (at least 1) as torch threads, instead of all of them: on a machine where
    other jobs run, all-core threads oversubscribe the cores and a CPU step can get several
    times slower. Returns the thread count set, or None when ``OMP_NUM_THREADS`` decides (the
    dist scripts set it per process)."""
    if environ.get('OMP_NUM_THREADS'):
        return None
    import torch
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()
    threads = max(1, (cpus or 1) // 2)
    torch.set_num_threads(threads)
    return threads
