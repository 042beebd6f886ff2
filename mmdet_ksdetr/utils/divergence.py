"""A diverging training run stops with one clear line instead of a scipy traceback.

:class:`TrainingDivergedError` is raised when a loss, a trained parameter or a matching cost
becomes NaN/inf; :func:`check_finite_cost` guards every Hungarian matching (scipy
``linear_sum_assignment``) of this library, which would otherwise fail with scipy's
"matrix contains invalid numeric entries". ``DivergenceHook``
(:mod:`mmdet_ksdetr.engine.hooks.divergence_hook`) watches the losses and parameters of a run.
"""
from typing import Optional, Tuple

import numpy as np
import torch

__all__ = ['TrainingDivergedError', 'check_finite_cost', 'format_divergence', 'CLIP_GRAD_HINT']

CLIP_GRAD_HINT = 'optim_wrapper.clip_grad=dict(max_norm=0.1, norm_type=2)'


def format_divergence(what: str, iteration: Optional[int] = None,
                      last_finite: Optional[Tuple[str, float, int]] = None) -> str:
    """The one-line divergence message.

    Args:
        what (str): what became non-finite, e.g. ``"loss_cls is nan"``.
        iteration (int, optional): 1-based training iteration where it happened.
        last_finite (tuple, optional): ``(loss name, value, iteration)`` of the last finite
            value of the loss that diverged.
    """
    where = f' at iteration {iteration}' if iteration is not None else ''
    last = ''
    if last_finite is not None:
        name, value, it = last_finite
        last = f' (last finite value: {name} = {value:.4g} at iteration {it})'
    return (f'training diverged{where}: {what}{last}; lower the learning rate or enable '
            f'gradient clipping: {CLIP_GRAD_HINT}')


class TrainingDivergedError(FloatingPointError):
    """Training diverged: a loss, a parameter or a matching cost became NaN/inf.

    Attributes:
        what (str): what became non-finite.
        iteration (int | None): 1-based iteration, when known where it was raised.
        last_finite (tuple | None): ``(loss name, value, iteration)``.
    """

    def __init__(self, what: str, iteration: Optional[int] = None,
                 last_finite: Optional[Tuple[str, float, int]] = None):
        self.what, self.iteration, self.last_finite = what, iteration, last_finite
        super().__init__(format_divergence(what, iteration, last_finite))


def check_finite_cost(cost, matching: str):
    """Return ``cost`` (numpy array or tensor) unchanged when all its entries are finite;
    otherwise raise :class:`TrainingDivergedError` naming ``matching`` (e.g. "TPRD
    teacher-to-GT matching"). Call it on every matrix handed to ``linear_sum_assignment``."""
    finite = bool(torch.isfinite(cost).all()) if isinstance(cost, torch.Tensor) \
        else bool(np.isfinite(cost).all())
    if not finite:
        raise TrainingDivergedError(f'the {matching} cost has NaN/inf entries (the model '
                                    'predicts non-finite values)')
    return cost
