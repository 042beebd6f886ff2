"""Stop a diverging run with one clear line (iteration, loss, last finite value, a hint).

Without it, a run whose losses explode keeps logging ever larger values until a NaN reaches
mmdet's ``HungarianAssigner``, which fails inside scipy with "matrix contains invalid numeric
entries". ``tools/train.py`` adds the hook to every run (``build_runner``) and turns a
divergence that still surfaces in the forward pass into the same one-line message
(:func:`describe_divergence`).
"""
import math
from typing import Dict, Optional, Tuple

import torch
from mmdet.models.dense_heads import DETRHead
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

from mmdet_ksdetr.utils.divergence import (LossBlowUpDetector, TrainingDivergedError,
                                           format_divergence)

__all__ = ['DivergenceHook', 'describe_divergence']

# scipy's linear_sum_assignment on a NaN/inf cost (mmdet's HungarianAssigner)
_SCIPY_NAN_MESSAGE = 'matrix contains invalid numeric entries'


# registered in mmengine's root registry, so that mmdet- and mmrazor-scoped configs find it
@HOOKS.register_module()
class DivergenceHook(Hook):
    """Raise :class:`TrainingDivergedError` as soon as a loss, a trained parameter or a DETR
    head's prediction is NaN/inf.

    * After every training iteration: every logged loss (keys containing ``loss``) and the
      largest absolute value of all trained parameters after the update, in one host sync;
      each loss's last finite value is remembered for the message.
    * After the forward of every DETR head in training mode (a module forward hook, so the
      frozen teacher and validation are skipped): its outputs, in one host sync per head call,
      right before the head's Hungarian assigner (which copies its cost to the CPU anyway).
      Huge but finite weights often give NaN only in the next forward pass; this stops the
      run there instead of inside scipy.

    * A finite blow-up: the total ``loss`` staying above ``blowup_factor`` x its running
      median for ``blowup_patience`` consecutive iterations (see
      :class:`~mmdet_ksdetr.utils.divergence.LossBlowUpDetector`). The run stops before the
      checkpoint hook runs, so the last checkpoint written stays as it was.

    Args:
        check_params (bool): check the trained parameters after the update. Defaults to True.
        check_head_outputs (bool): check the DETR heads' predictions. Defaults to True.
        blowup_factor (float | None): multiple of the running median of the total loss that
            counts as a blow-up; None switches the check off. Defaults to 1e3.
        blowup_patience (int): consecutive iterations above it that stop the run.
            Defaults to 20.
        blowup_warmup (int): first iterations whose loss always enters the median.
            Defaults to 1.
        blowup_window (int): number of recent (not blown-up) losses the median is taken over.
            Defaults to 100.
    """

    priority = 'VERY_HIGH'  # before EMA / checkpoint hooks see the broken weights

    def __init__(self, check_params: bool = True, check_head_outputs: bool = True,
                 blowup_factor: Optional[float] = 1e3, blowup_patience: int = 20,
                 blowup_warmup: int = 1, blowup_window: int = 100) -> None:
        self.check_params = check_params
        self.check_head_outputs = check_head_outputs
        self.blowup_args = None if blowup_factor is None else dict(
            factor=blowup_factor, patience=blowup_patience, warmup=blowup_warmup,
            window=blowup_window)
        self.blowup = LossBlowUpDetector(**self.blowup_args) if self.blowup_args else None
        self.last_finite: Dict[str, Tuple[float, int]] = {}
        self._params, self._handles, self._head_names = [], [], {}
        self._iteration = None

    def before_train(self, runner) -> None:
        self.last_finite = {}
        self.blowup = LossBlowUpDetector(**self.blowup_args) if self.blowup_args else None
        self._params = [(n, p) for n, p in runner.model.named_parameters() if p.requires_grad]
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if self.check_head_outputs:
            self._head_names = {m: n for n, m in model.named_modules() if isinstance(m, DETRHead)}
            self._handles = [m.register_forward_hook(self._check_head) for m in self._head_names]

    def after_train(self, runner) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles, self._head_names = [], {}

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._iteration = runner.iter + 1

    def _check_head(self, module, args, output) -> None:
        """Forward hook of a DETR head: its floating-point outputs must be finite."""
        if not module.training:
            return
        tensors = [t for t in _tensors(output) if t.is_floating_point()]
        if tensors and not bool(torch.stack([t.detach().isfinite().all() for t in tensors])
                                .all()):
            raise TrainingDivergedError(
                f'{self._head_names.get(module, "the head")} ({type(module).__name__}) '
                'predicts NaN/inf', self._iteration, self.largest_loss())

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        iteration = runner.iter + 1
        losses = {k: v for k, v in (outputs or {}).items() if 'loss' in k}
        values = [torch.as_tensor(v).detach().float().mean() for v in losses.values()]
        if self.check_params and self._params:
            params = [p.detach() for _, p in self._params]
            values.append(torch.nn.utils.get_total_norm(params, float('inf')))
        if not values:
            return
        device = values[-1].device
        host = torch.stack([v.to(device) for v in values]).tolist()  # the one host sync
        bad = [k for k, x in zip(losses, host) if not math.isfinite(x)]
        if bad:
            name = next((k for k in bad if k != 'loss'), bad[0])  # a component, not the sum
            last = self.last_finite.get(name)
            raise TrainingDivergedError(f'{name} is {host[list(losses).index(name)]}',
                                        iteration, (name, *last) if last else None)
        for k, x in zip(losses, host):
            self.last_finite[k] = (x, iteration)
        if self.blowup is not None and losses:
            total = host[list(losses).index('loss')] if 'loss' in losses else \
                sum(host[:len(losses)])
            blown = self.blowup.update(total, iteration)
            if blown:
                raise TrainingDivergedError(blown, iteration)
        if len(host) > len(losses) and not math.isfinite(host[-1]):
            broken = [n for n, p in self._params if not torch.isfinite(p).all()]
            raise TrainingDivergedError(
                f'the parameter update made {len(broken)} parameter tensors NaN/inf '
                f'(first: {broken[0] if broken else "?"})', iteration, self.largest_loss())

    def largest_loss(self) -> Optional[Tuple[str, float, int]]:
        """``(name, value, iteration)`` of the largest last finite loss component (the total
        ``loss`` only when there is no component), or None before the first iteration."""
        items = [(k, v) for k, v in self.last_finite.items() if k != 'loss'] or \
            list(self.last_finite.items())
        if not items:
            return None
        name, (value, it) = max(items, key=lambda kv: abs(kv[1][0]))
        return name, value, it


def describe_divergence(runner, exc: BaseException) -> Optional[str]:
    """The one-line divergence message for ``exc`` raised by ``runner.train()``, or None when
    ``exc`` does not mean the run diverged.

    Understands :class:`TrainingDivergedError` (from :class:`DivergenceHook` or a guarded
    matching) and scipy's NaN-cost ``ValueError`` from mmdet's own assigners; adds the
    iteration and the largest last finite loss that the runner's :class:`DivergenceHook`
    recorded."""
    if isinstance(exc, TrainingDivergedError):
        if exc.iteration is not None:
            return str(exc)
        what = exc.what
    elif isinstance(exc, ValueError) and _SCIPY_NAN_MESSAGE in str(exc):
        what = 'a Hungarian matching cost has NaN/inf entries (the model predicts non-finite ' \
               'values)'
    else:
        return None
    try:
        iteration = runner.iter + 1
    except Exception:  # noqa: BLE001  (the train loop was never built)
        iteration = None
    hook = next((h for h in getattr(runner, 'hooks', []) if isinstance(h, DivergenceHook)),
                None)
    return format_divergence(what, iteration, hook.largest_loss() if hook else None)


def _tensors(output):
    """The tensors in a (nested) tuple / list / dict of module outputs."""
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, (tuple, list)):
        return [t for o in output for t in _tensors(o)]
    return []
