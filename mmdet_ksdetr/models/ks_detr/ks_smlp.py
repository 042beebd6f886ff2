"""Teacher inputs of KS-DETR: how the GT foreground mask enters the teacher streams.

Both modules map the encoder input ``x`` (B, N, C) and the foreground token mask (B, N) to the
teacher input ``x^t`` (B, N, C). They are selected by ``ks_cfg.teacher_input.type``.
"""
import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmdet.registry import MODELS

__all__ = ['KSSMLP', 'KSMarkFg']


@MODELS.register_module()
class KSSMLP(BaseModule):
    """sMLP of KS-DETR: foreground tokens are *replaced* by ``ReLU(W x + b)``, background and
    padding tokens pass through unchanged:

        x^t = (1 - m) * x + m * ReLU(W x + b)

    It gives the teacher streams an input that knows which tokens are on an object.
    One ``Linear(C, C)`` with PyTorch's default initialisation (the release keeps it, because
    the module lives outside the transformer whose weights are xavier-initialised).

    Args:
        embed_dims (int): C.

    Shapes: ``x`` (B, N, C), ``fg_mask`` (B, N) bool -> (B, N, C).
    """

    def __init__(self, embed_dims: int, init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.embed_dims = embed_dims
        self.fc = nn.Linear(embed_dims, embed_dims)

    def ks_init_weights(self) -> None:
        """Restore PyTorch's default init after a detector's xavier pass over the encoder."""
        self.fc.reset_parameters()

    def forward(self, x: Tensor, fg_mask: Tensor) -> Tensor:
        if x.shape[-1] != self.embed_dims:
            raise ValueError(f'KSSMLP built for {self.embed_dims} channels got {x.shape[-1]}')
        return torch.where(fg_mask[..., None].bool(), F.relu(self.fc(x)), x)


@MODELS.register_module()
class KSMarkFg(BaseModule):
    """"mark" ablation of KS-DETR (``MarkFg1Bg0``): the last channel of ``x`` is overwritten by
    the foreground mask (1 on GT tokens, 0 elsewhere); no parameters.

    Shapes: ``x`` (B, N, C), ``fg_mask`` (B, N) -> (B, N, C).
    """

    def __init__(self, embed_dims: int, init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.embed_dims = embed_dims

    def forward(self, x: Tensor, fg_mask: Tensor) -> Tensor:
        return torch.cat([x[..., :-1], fg_mask[..., None].to(x.dtype)], -1)
