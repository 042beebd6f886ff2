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
