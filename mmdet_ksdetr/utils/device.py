"""Device helpers for the training hot paths: one transfer each way, float32 regions.

The Hungarian matchings run in scipy on the host. :func:`to_host` brings every tensor a
matching needs to the host in **one** device-to-host copy (one synchronisation per call instead
of one per tensor, layer or image), and :func:`to_device` sends the integer results back in one
host-to-device copy. :func:`float32_region` switches autocast off where a cost must stay in
float32 under ``--amp``.
"""
import contextlib
from typing import Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

__all__ = ['to_host', 'to_device', 'float32_region']


def _numpy_dtype(dtype: torch.dtype):
    if dtype == torch.bool:
        return np.bool_
    if dtype == torch.float64:
        return np.float64
    return np.float32 if dtype.is_floating_point else np.int64


def to_host(*tensors: Tensor) -> Tuple[np.ndarray, ...]:
    """numpy copies of ``tensors`` (any shapes, devices' tensors of one device) made with a
    single device-to-host copy.

    Floating tensors come back as float32 (float64 stays float64), bool as bool, integers as
    int64; values are exact (they travel as float64; integers must stay below 2**53, which
    indices and counts do)."""
    if not tensors:
        return ()
    flat = torch.cat([t.detach().reshape(-1).to(torch.float64) for t in tensors])
    host = flat.cpu().numpy()
    out, start = [], 0
    for t in tensors:
        part = host[start:start + t.numel()].reshape(tuple(t.shape))
        out.append(part.astype(_numpy_dtype(t.dtype)))
        start += t.numel()
    return tuple(out)


def to_device(arrays: Sequence[np.ndarray], device) -> Tuple[Tensor, ...]:
    """int64 tensors on ``device`` from integer numpy arrays, with one host-to-device copy;
    each result has the shape of its array."""
    if not arrays:
        return ()
    flat = np.concatenate([np.asarray(a, dtype=np.int64).reshape(-1) for a in arrays])
    moved = torch.from_numpy(flat).to(device)
    parts = moved.split([int(np.size(a)) for a in arrays])
    return tuple(p.view(np.shape(a)) for p, a in zip(parts, arrays))


def float32_region(reference: Tensor):
    """A context in which autocast is off on ``reference``'s device (a no-op on devices
    without autocast), so a cost built from ``.float()`` inputs stays float32 under --amp."""
    device_type = reference.device.type
    if device_type in ('cuda', 'cpu', 'xpu', 'mps'):
        return torch.autocast(device_type=device_type, enabled=False)
    return contextlib.nullcontext()
