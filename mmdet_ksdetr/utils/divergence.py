"""A diverging training run stops with one clear line instead of a scipy traceback.

:class:`TrainingDivergedError` is raised when a loss, a trained parameter or a matching cost
becomes NaN/inf; :func:`check_finite_cost` guards every Hungarian matching (scipy
``linear_sum_assignment``) of this library, which would otherwise fail with scipy's
"matrix contains invalid numeric entries". ``DivergenceHook``
(:mod:`mmdet_ksdetr.engine.hooks.divergence_hook`) watches the losses and parameters of a run.
"""
import statistics
from collections import deque
from typing import Optional, Tuple

import numpy as np
import torch

__all__ = ['TrainingDivergedError', 'check_finite_cost', 'format_divergence', 'CLIP_GRAD_HINT',
           'LossBlowUpDetector']

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


class LossBlowUpDetector:
    """Finds a finite blow-up: the total loss staying above ``factor`` times its running median
    for ``patience`` consecutive iterations (e.g. lr=1000: 14 -> 4e9, finite for epochs).

    The running median is taken over the last ``window`` losses that were *not* above the
    threshold, so a blow-up does not raise its own reference; the first ``warmup`` losses
    always enter it (they set the scale). A reference median <= 0 flags nothing. Feed one
    scalar per iteration to :meth:`update`.

    Args:
        factor (float): how many times the running median counts as a blow-up. Default 1e3.
        patience (int): consecutive iterations above it before :meth:`update` reports.
            Default 20.
        warmup (int): first iterations that always enter the reference. Default 1.
        window (int): how many accepted losses the median is taken over. Default 100.
    """

    def __init__(self, factor: float = 1e3, patience: int = 20, warmup: int = 1,
                 window: int = 100):
        if factor <= 1 or patience < 1 or warmup < 1 or window < 1:
            raise ValueError(f'LossBlowUpDetector: factor > 1, patience, warmup and window '
                             f'>= 1 expected, got {factor}, {patience}, {warmup}, {window}')
        self.factor, self.patience, self.warmup = factor, patience, warmup
        self.accepted = deque(maxlen=window)
        self.seen = 0
        self.streak = 0
        self.since: Optional[int] = None  # 1-based iteration where the current streak began

    def update(self, value: float, iteration: Optional[int] = None) -> Optional[str]:
        """Record one finite loss value; a one-line description of the blow-up when the loss
        has now been above ``factor`` x the running median for ``patience`` iterations in a
        row, else None."""
        self.seen += 1
        iteration = self.seen if iteration is None else iteration
        median = statistics.median(self.accepted) if self.accepted else None
        if self.seen <= self.warmup or median is None or median <= 0 or \
                value <= self.factor * median:
            self.accepted.append(value)
            self.streak, self.since = 0, None
            return None
        self.streak += 1
        self.since = self.since or iteration
        if self.streak < self.patience:
            return None
        return (f'loss = {value:.4g} has stayed above {self.factor:g} x its running median '
                f'({median:.4g}) for {self.streak} iterations (since iteration {self.since})')
