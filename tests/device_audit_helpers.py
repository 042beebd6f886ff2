"""Torch function modes that audit device placement and host syncs of our code on CPU.

:class:`FactoryDeviceAudit` records every tensor factory (``torch.zeros``, ``arange``,
``tensor``, ...) called *directly from mmdet_ksdetr code* without an explicit ``device=``: on a
GPU such a tensor lands on the CPU and is then mixed with CUDA tensors (an error, or a silent
host round trip). :class:`HostSyncCounter` counts the calls that wait for the device
(``item``, ``tolist``, ``bool(t)``, ``nonzero``, boolean-mask indexing, ...).
"""
import os.path as osp
import sys

import torch
from torch.overrides import TorchFunctionMode

import mmdet_ksdetr

PACKAGE = osp.dirname(osp.abspath(mmdet_ksdetr.__file__))
EXCLUDED = (osp.join(PACKAGE, 'analysis'), )  # offline tools, not the training step

FACTORIES = {
    'zeros', 'ones', 'empty', 'full', 'arange', 'range', 'linspace', 'logspace', 'eye',
    'tensor', 'as_tensor', 'rand', 'randn', 'randint', 'randperm', 'zeros_like_none',
    'scalar_tensor', 'empty_strided', 'tril_indices', 'triu_indices'
}
SYNC_METHODS = {'item', 'tolist', 'cpu', 'numpy', '__bool__', '__int__', '__float__',
                '__index__', 'nonzero', 'masked_select', 'unique', 'bincount'}


def _our_caller():
    """``(file, function, line)`` of the first frame outside torch and this module if it is
    our package's code, else None."""
    frame = sys._getframe(2)
    while frame is not None:
        path = frame.f_code.co_filename
        if path != __file__ and not path.startswith(osp.dirname(torch.__file__)):
            if path.startswith(PACKAGE) and not path.startswith(EXCLUDED):
                return (osp.relpath(path, PACKAGE).replace(osp.sep, '/'), frame.f_code.co_name,
                        frame.f_lineno)
            return None
        frame = frame.f_back
    return None


class FactoryDeviceAudit(TorchFunctionMode):
    """Records ``(where, factory)`` of factories called from our code without ``device=``
    (``generator=`` with its own device counts as placed)."""

    def __init__(self):
        super().__init__()
        self.missing = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, '__name__', '')
        if name in FACTORIES and getattr(func, '__module__', '') in ('torch', None) and \
                kwargs.get('device') is None and 'generator' not in kwargs:
            where = _our_caller()
            if where is not None:
                self.missing.append((where, name))
        return func(*args, **kwargs)


class HostSyncCounter(TorchFunctionMode):
    """Records host-sync calls made inside the block: ``calls`` (names, any caller) and
    ``ours`` (``(file, function, line, name)`` of those made directly by our package)."""

    def __init__(self):
        super().__init__()
        self.calls, self.ours = [], []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, '__name__', '')
        if name == '__getitem__' and len(args) > 1:
            index = args[1] if isinstance(args[1], tuple) else (args[1], )
            if any(torch.is_tensor(i) and i.dtype == torch.bool for i in index):
                name = 'bool-mask index'
        if name in SYNC_METHODS or name == 'bool-mask index':
            self.calls.append(name)
            where = _our_caller()
            if where is not None:
                self.ours.append(where + (name, ))
        return func(*args, **kwargs)
