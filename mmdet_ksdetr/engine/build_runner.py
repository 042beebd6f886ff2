"""Runner construction shared by tools/train.py and tools/test.py (as mmdet's tools do it)."""
import os
import re


def build_runner(cfg):
    """The Runner of ``cfg``: :class:`~mmdet_ksdetr.engine.CrashSafeRunner` (atomic checkpoints,
    exact auto-resume, strict ``weights_only`` loading) unless the config names a registered
    ``runner_type``, which is then built as mmdet's tools do. A ``DivergenceHook`` joins
    ``cfg.custom_hooks`` unless the config has one."""
    from mmdet.utils import setup_cache_size_limit_of_dynamo
    from mmengine.registry import RUNNERS

    from mmdet_ksdetr.engine.runner import CrashSafeRunner
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


_UNEXPECTED_KWARG = re.compile(r"(\w+)\.__init__\(\) got an unexpected keyword argument '(\w+)'")
_NOT_REGISTERED = re.compile(r"(\S+) is not in the (\S+) registry")


def describe_build_error(exc: BaseException):
    """One line for the config mistakes that fail while the runner builds the model, or None
    (then the traceback is the useful answer): an unknown ``type`` or an unknown keyword."""
    text = str(exc.args[0]) if getattr(exc, 'args', None) else str(exc)
    if isinstance(exc, KeyError):
        m = _NOT_REGISTERED.search(text)
        if m:
            return (f'type="{m.group(1)}" in the config is not in the {m.group(2)} registry: '
                    f'check the spelling, or add the package that registers it to '
                    f'custom_imports')
    if isinstance(exc, TypeError):
        m = _UNEXPECTED_KWARG.search(text)
        if m:
            return (f'the config gives {m.group(1)} an option it does not take: '
                    f'"{m.group(2)}" (remove or rename that key)')
    return None


def build_runner_or_exit(cfg, tool: str):
    """:func:`build_runner`; a config mistake found while building the model (see
    :func:`describe_build_error`) exits with one line ``<tool>: error: ...``."""
    try:
        return build_runner(cfg)
    except (KeyError, TypeError) as e:
        message = describe_build_error(e)
        if message is None:
            raise
        raise SystemExit(f'{tool}: error: {message}') from None
