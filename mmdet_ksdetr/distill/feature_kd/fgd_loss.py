"""FGD: Focal and Global knowledge Distillation (Yang et al., CVPR'22), written for one neck
level of a DETR (MMRazor 1.0 has no FGD loss)."""
from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from mmrazor.registry import MODELS
from torch import Tensor, nn

__all__ = ['FGDLoss']


class _ContextBlock(nn.Module):
    """Global context (GcNet) block: attention-pooled context added to every position."""

    def __init__(self, channels: int):
        super().__init__()
        self.mask = nn.Conv2d(channels, 1, kernel_size=1)
        self.transform = nn.Sequential(
            nn.Conv2d(channels, channels // 2, kernel_size=1),
            nn.LayerNorm([channels // 2, 1, 1]), nn.ReLU(inplace=True),
            nn.Conv2d(channels // 2, channels, kernel_size=1))
        nn.init.zeros_(self.transform[-1].weight)
        nn.init.zeros_(self.transform[-1].bias)

    def forward(self, x: Tensor) -> Tensor:
        B, C, H, W = x.shape
        attn = self.mask(x).view(B, 1, H * W).softmax(-1)  # (B, 1, HW)
        context = torch.bmm(x.view(B, C, H * W), attn.transpose(1, 2)).view(B, C, 1, 1)
        return x + self.transform(context)


@MODELS.register_module()
class FGDLoss(nn.Module):
    """FGD for one feature level: the student imitates the teacher's features separately on
    the GT foreground and the background (focal distillation, weighted by the teacher's spatial
    and channel attention and by 1 / box area), mimics the teacher's attention maps, and
    matches the teacher's global context (GcBlock relation).

    Shapes: ``preds_S`` / ``preds_T`` (B, C, H, W); ``gt_bboxes`` a list of (G_i, 4) pixel
    xyxy boxes in the padded network-input frame ``batch_input_shape`` (h, w).

    Args:
        student_channels, teacher_channels (int): a 1x1 align conv is added if they differ.
        temp (float): attention temperature (0.5). alpha_fgd, beta_fgd (float): foreground /
            background feature weights (1e-3, 5e-4). gamma_fgd (float): attention loss (5e-4).
        lambda_fgd (float): global loss (5e-6). loss_weight (float): outer multiplier.
    """

    def __init__(self, student_channels: int = 256, teacher_channels: int = 256,
                 temp: float = 0.5, alpha_fgd: float = 1e-3, beta_fgd: float = 5e-4,
                 gamma_fgd: float = 5e-4, lambda_fgd: float = 5e-6, loss_weight: float = 1.0):
        super().__init__()
        self.temp = temp
        self.alpha, self.beta, self.gamma, self.lam = alpha_fgd, beta_fgd, gamma_fgd, lambda_fgd
        self.loss_weight = loss_weight
        self.align = nn.Conv2d(student_channels, teacher_channels, 1) \
            if student_channels != teacher_channels else None
        self.context_s = _ContextBlock(teacher_channels)
        self.context_t = _ContextBlock(teacher_channels)

    def attention(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """Spatial (B, H, W) and channel (B, C) attention: softmax of the mean absolute
        activation / temp, scaled by H*W and C."""
        B, C, H, W = x.shape
        a = x.abs()
        spatial = (a.mean(1).view(B, -1) / self.temp).softmax(-1).view(B, H, W) * H * W
        channel = (a.mean((2, 3)) / self.temp).softmax(-1) * C
        return spatial, channel

    @torch.no_grad()
    def masks(self, gt_bboxes: Sequence[Tensor], batch_input_shape, shape, device):
        """Foreground (1 / box area in cells, max over overlapping boxes) and background
        (1 / #background cells) masks, (B, H, W) each."""
        B, H, W = shape
        in_h, in_w = batch_input_shape
        ys = torch.arange(H, device=device, dtype=torch.float32).view(1, H, 1)
        xs = torch.arange(W, device=device, dtype=torch.float32).view(1, 1, W)
        fg = torch.zeros(B, H, W, device=device)
        for b, boxes in enumerate(gt_bboxes):  # per image; vectorised over its boxes
            if len(boxes) == 0:
                continue
            bx = boxes.float().to(device)
            x1 = (bx[:, 0] / in_w * W).floor().view(-1, 1, 1)
            x2 = (bx[:, 2] / in_w * W).ceil().clamp(max=W).view(-1, 1, 1)
            y1 = (bx[:, 1] / in_h * H).floor().view(-1, 1, 1)
            y2 = (bx[:, 3] / in_h * H).ceil().clamp(max=H).view(-1, 1, 1)
            inside = (xs >= x1) & (xs < x2) & (ys >= y1) & (ys < y2)
            area = ((x2 - x1) * (y2 - y1)).clamp(min=1.0)
            fg[b] = (inside.float() / area).amax(0)
        bg = (fg == 0).float()
        bg = bg / bg.flatten(1).sum(1).clamp(min=1.0).view(B, 1, 1)
        return fg, bg

    def forward(self, preds_S: Tensor, preds_T: Tensor, gt_bboxes: Sequence[Tensor],
                batch_input_shape) -> Tensor:
        if self.align is not None:
            preds_S = self.align(preds_S)
        if preds_S.shape != preds_T.shape:
            raise ValueError(f'FGDLoss: student features {tuple(preds_S.shape)} and teacher '
                             f'features {tuple(preds_T.shape)} differ (set student_channels / '
                             f'teacher_channels, same spatial size needed)')
        t = preds_T.detach()
        B, C, H, W = t.shape
        s_sp, s_ch = self.attention(preds_S)
        t_sp, t_ch = self.attention(t)
        fg, bg = self.masks(gt_bboxes, batch_input_shape, (B, H, W), t.device)
        weight = (t_sp[:, None] * t_ch[:, :, None, None]).sqrt()
        diff = ((preds_S - t) * weight)**2  # (B, C, H, W)
        loss_fg = (diff * fg[:, None]).sum() / B
        loss_bg = (diff * bg[:, None]).sum() / B
        loss_attn = ((s_sp / (H * W) - t_sp / (H * W)).abs().sum() +
                     (s_ch / C - t_ch / C).abs().sum()) / B
        loss_global = F.mse_loss(self.context_s(preds_S), self.context_t(t), reduction='sum') / B
        total = self.alpha * loss_fg + self.beta * loss_bg + self.gamma * loss_attn + \
            self.lam * loss_global
        return self.loss_weight * total
