"""D3ETR's decoder attention-map distillation."""
from mmrazor.registry import MODELS
from torch import Tensor, nn

__all__ = ['AttentionMapLoss']


@MODELS.register_module()
class AttentionMapLoss(nn.Module):
    """Mean squared error between paired student and teacher attention maps (D3ETR distils the
    decoder's self-attention sub-matrix of matched queries, weight 1e4, and the cross-attention
    of matched queries, weight 1e3).

    Shapes: any two equal shapes, e.g. self-attention ``(B, M, M)`` (rows/columns already
    permuted into the matching) or deformable cross-attention weights ``(B, M, heads,
    levels * points)``. The teacher map carries no gradient.
    """

    def __init__(self, loss_weight: float = 1.0):
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, student_map: Tensor, teacher_map: Tensor) -> Tensor:
        if student_map.shape != teacher_map.shape:
            raise ValueError(f'AttentionMapLoss: student map {tuple(student_map.shape)} and '
                             f'teacher map {tuple(teacher_map.shape)} differ; the two decoders '
                             f'need the same heads / levels / points')
        if student_map.numel() == 0:
            return student_map.sum() * 0.0
        diff = student_map.float() - teacher_map.detach().float()
        return self.loss_weight * diff.pow(2).mean()
