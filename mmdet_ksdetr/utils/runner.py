"""Runner construction shared by tools/train.py and tools/test.py (as mmdet's tools do it)."""


def build_runner(cfg):
    """The mmengine Runner of ``cfg``: ``Runner.from_cfg``, or the registered ``runner_type``."""
    from mmdet.utils import setup_cache_size_limit_of_dynamo
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    setup_cache_size_limit_of_dynamo()
    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    return RUNNERS.build(cfg)


def shutdown_distributed():
    """Tear the default process group down before the interpreter exits.

    Without it a gloo process can abort at exit ("terminate called without an active
    exception", SIGABRT) after a finished run, which torchrun reports as a failed job."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
