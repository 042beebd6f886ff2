"""mmengine hooks of mmdet_ksdetr (registered in mmengine's ``HOOKS``)."""
from .divergence_hook import DivergenceHook, describe_divergence

__all__ = ['DivergenceHook', 'describe_divergence']
