"""Contrastive ("CL") query distillation of the DETRDistill release (spec §1.4)."""
import torch
import torch.nn.functional as F
from mmrazor.registry import MODELS
from torch import Tensor, nn

__all__ = ['QueryContrastLoss']


def _projector(in_channels, channels):
    return nn.Sequential(
        nn.Linear(in_channels, channels), nn.Linear(channels, channels),
        nn.BatchNorm1d(channels), nn.ReLU(inplace=True), nn.Linear(channels, channels))


@MODELS.register_module()
class QueryContrastLoss(nn.Module):
    """InfoNCE between matched student and teacher decoder queries (the release's MoCo-style
    "CL" head): each side goes through its own trainable projector
    (Linear, Linear, BN1d, ReLU, Linear) and is L2-normalised; for a batch of M matched pairs,
    ``logits = g_t @ g_s.T / T`` and the loss is ``CE(logits, arange(M))`` - the matched
    student query is the positive, every other student query of the (per-GPU) batch a negative.

    Shapes: ``student_queries`` (M, D_s), ``teacher_queries`` (M, D_t) (teacher detached).

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
        if student_queries.shape[0] != teacher_queries.shape[0]:
            raise ValueError(f'QueryContrastLoss: {student_queries.shape[0]} student and '
                             f'{teacher_queries.shape[0]} teacher queries; pass matched pairs')
        if student_queries.shape[0] < 2:  # BN1d and InfoNCE need >= 2 pairs
            return student_queries.sum() * 0.0
        g_s = F.normalize(self.student_proj(student_queries), dim=-1)
        g_t = F.normalize(self.teacher_proj(teacher_queries.detach()), dim=-1)
        logits = g_t @ g_s.t() / self.temperature
        target = torch.arange(logits.shape[0], device=logits.device)
        return self.loss_weight * F.cross_entropy(logits, target)
