"""Contrastive ("CL") query distillation of the DETRDistill release."""
import torch
import torch.nn.functional as F
from mmrazor.registry import MODELS
from torch import Tensor, nn

__all__ = ['QueryContrastLoss']


def _projector(in_channels, channels):
    return nn.Sequential(
        nn.Linear(in_channels, channels), nn.Linear(channels, channels),
        nn.BatchNorm1d(channels), nn.ReLU(inplace=True), nn.Linear(channels, channels))


def _batch_norm_per_layer(bn: nn.BatchNorm1d, x: Tensor) -> Tensor:
    """``bn`` applied to each x[l] of x (L, M, C) as L separate calls would: in training each
    layer is normalised with its own batch statistics and the running statistics get L
    updates, in order."""
    L, M, C = x.shape
    if not bn.training or L == 1:
        return bn(x.reshape(L * M, C)).view(L, M, C) if not bn.training else bn(x[0])[None]
    # (M, L * C): batch statistics per (layer, channel) over the M rows
    flat = x.transpose(0, 1).reshape(M, L * C)
    weight = bn.weight.repeat(L) if bn.weight is not None else None
    bias = bn.bias.repeat(L) if bn.bias is not None else None
    out = F.batch_norm(flat, None, None, weight, bias, True, 0.0, bn.eps)
    if bn.track_running_stats:
        with torch.no_grad():
            mean, var = x.mean(1), x.var(1, unbiased=True)
            for l in range(L):
                bn.num_batches_tracked += 1
                factor = bn.momentum if bn.momentum is not None else \
                    1.0 / float(bn.num_batches_tracked)
                bn.running_mean.mul_(1 - factor).add_(mean[l], alpha=factor)
                bn.running_var.mul_(1 - factor).add_(var[l], alpha=factor)
    return out.view(M, L, C).transpose(0, 1)


def _project(projector: nn.Sequential, x: Tensor) -> Tensor:
    """The projector on (L, M, D) queries, BN per layer."""
    lin1, lin2, bn, _, lin3 = projector
    return lin3(F.relu(_batch_norm_per_layer(bn, lin2(lin1(x)))))


@MODELS.register_module()
class QueryContrastLoss(nn.Module):
    """InfoNCE between matched student and teacher decoder queries (the release's MoCo-style
    "CL" head): each side goes through its own trainable projector
    (Linear, Linear, BN1d, ReLU, Linear) and is L2-normalised; for a batch of M matched pairs,
    ``logits = g_t @ g_s.T / T`` and the loss is ``CE(logits, arange(M))`` - the matched
    student query is the positive, every other student query of the (per-GPU) batch a negative.

    Shapes: ``student_queries`` (M, D_s), ``teacher_queries`` (M, D_t) (teacher detached).
    :meth:`forward_layers` takes (L, M, D) pairs of L decoder layers and returns the L losses
    (each layer its own BN batch and its own negatives, as L calls) in one pass.

    Args:
        in_channels: D_s; ``teacher_in_channels`` D_t (default: same).
        proj_channels: projector width (release: 512).
        temperature: T (release: 0.07).
        loss_weight: release: 0.2.
    """

    def __init__(self, in_channels: int = 256, proj_channels: int = 512,
                 temperature: float = 0.07, loss_weight: float = 0.2,
                 teacher_in_channels: int = None):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f'QueryContrastLoss: temperature must be > 0, got {temperature}')
        self.temperature = temperature
        self.loss_weight = loss_weight
        self.student_proj = _projector(in_channels, proj_channels)
        self.teacher_proj = _projector(teacher_in_channels or in_channels, proj_channels)

    def forward(self, student_queries: Tensor, teacher_queries: Tensor) -> Tensor:
        return self.forward_layers(student_queries[None], teacher_queries[None])[0]

    def forward_layers(self, student_queries: Tensor, teacher_queries: Tensor) -> Tensor:
        """(L,) losses for (L, M, D_s) student and (L, M, D_t) teacher queries."""
        if student_queries.shape[:2] != teacher_queries.shape[:2]:
            raise ValueError(f'QueryContrastLoss: {tuple(student_queries.shape[:-1])} student '
                             f'and {tuple(teacher_queries.shape[:-1])} teacher queries; pass '
                             f'matched pairs')
        L, M = student_queries.shape[:2]
        if M < 2:  # BN1d and InfoNCE need >= 2 pairs
            return student_queries.sum((1, 2)) * 0.0
        g_s = F.normalize(_project(self.student_proj, student_queries), dim=-1)
        g_t = F.normalize(_project(self.teacher_proj, teacher_queries.detach()), dim=-1)
        logits = g_t @ g_s.transpose(1, 2) / self.temperature  # (L, M, M)
        target = torch.arange(M, device=logits.device).repeat(L)
        ce = F.cross_entropy(logits.reshape(L * M, M), target, reduction='none')
        return self.loss_weight * ce.view(L, M).mean(1)
