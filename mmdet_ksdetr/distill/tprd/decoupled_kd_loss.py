"""Decoupled class distillation of TPRD.

For a student/teacher prediction pair whose teacher query is a positive of the teacher's GT
assignment (class ``c``), the class knowledge is split DKD-style into the target-class part
(TCKD: binary KL of ``[p(c), 1 - p(c)]``) and the non-target part (NCKD: KL of the softmax over
the other classes); every other pair gets the plain KL of the full softmax. Softmax over the
sigmoid-trained DETR logits is kept on purpose (that is what TPRD does).

All arithmetic is done in float32 log-space (``log(1 - p(c))`` is ``logsumexp`` of the other
classes minus ``logsumexp`` of all), so there is no ``log(0)`` and fp16 inputs with extreme
logits give finite losses and gradients.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from mmrazor.registry import MODELS
from torch import Tensor, nn

_PACK = 1 << 31  # labels below it, counts times it: both fit one int64


def _kl_rows(log_p_t: Tensor, log_p_s: Tensor) -> Tensor:
    """sum_c p_t * (log p_t - log p_s) over the last dim, 0 * log 0 = 0 (a ``-inf`` teacher
    log-probability is clamped to the lowest float, whose ``exp`` is 0). One fused
    ``kl_div`` kernel, forward and backward."""
    log_p_t = log_p_t.clamp(min=torch.finfo(log_p_t.dtype).min)
    return F.kl_div(log_p_s, log_p_t, reduction='none', log_target=True).sum(-1)


def kd_kl_loss(student_logits: Tensor, teacher_logits: Tensor,
               temperature: float = 1.0) -> Tensor:
    """Per-pair ``T^2 * KL(softmax(z_t / T) || softmax(z_s / T))``: ``[..., C]`` -> ``[...]``."""
    zs = student_logits.float() / temperature
    zt = teacher_logits.detach().float() / temperature
    return _kl_rows(F.log_softmax(zt, -1), F.log_softmax(zs, -1)) * temperature**2


def _dkd_rows(zs: Tensor, zt: Tensor, ls: Tensor, lt: Tensor, labels: Tensor, alpha: float,
              beta: float) -> Tensor:
    """``alpha * TCKD + beta * NCKD`` of positive rows: logits ``zs, zt [P, C]`` (already
    divided by T), their log-softmax ``ls, lt [P, C]``, ``labels [P]`` -> ``[P]``."""
    c = labels.long().unsqueeze(-1)
    target = torch.zeros_like(zs, dtype=torch.bool).scatter_(-1, c, True)
    very_neg = torch.finfo(torch.float32).min
    zs_nt = zs.masked_fill(target, very_neg)
    zt_nt = zt.masked_fill(target, very_neg)
    # a -inf teacher logit: clamped, so that its exp is 0 and 0 * (log p_t - log p_s) is 0
    lt_n = F.log_softmax(zt_nt, -1).clamp_(min=very_neg)
    ls_n = F.log_softmax(zs_nt, -1)
    # TCKD: binary KL of [p(c), 1 - p(c)]; log(1 - p(c)) = lse(z without c) - lse(z), which is
    # log_softmax(z)_j - log_softmax(z without c)_j at any non-target j (the largest one here)
    j_s, j_t = zs_nt.argmax(-1, keepdim=True), zt_nt.argmax(-1, keepdim=True)
    ls_nc = ls.gather(-1, j_s) - ls_n.gather(-1, j_s)
    lt_nc = lt.gather(-1, j_t) - lt_n.gather(-1, j_t)
    tckd = _kl_rows(torch.cat([lt.gather(-1, c), lt_nc], -1),
                    torch.cat([ls.gather(-1, c), ls_nc], -1))
    # NCKD: KL of the softmax over the non-target classes (the target entry has p = 0).
    nckd = torch.where(target, torch.zeros_like(lt_n), lt_n.exp() * (lt_n - ls_n)).sum(-1)
    return alpha * tckd + beta * nckd


def decoupled_kd_loss(student_logits: Tensor,
                      teacher_logits: Tensor,
                      pos_labels: Optional[Tensor] = None,
                      temperature: float = 1.0,
                      alpha: float = 1.0,
                      beta: float = 1.0) -> Tensor:
    """Per-pair decoupled class distillation loss.

    The plain KL is computed for every pair, the TCKD / NCKD split only on the positive rows
    (gathered, then written over their KL rows).

    Args:
        student_logits (Tensor): ``[..., C]`` student class logits.
        teacher_logits (Tensor): ``[..., C]`` (refined) teacher class logits (no grad).
        pos_labels (Tensor, optional): ``[...]`` long, the GT class of the teacher query for
            positive pairs and ``-1`` for the others. ``None``: no positives (plain KL).
        temperature (float): softmax temperature ``T`` (TPRD: 1); the loss is scaled by T^2.
        alpha, beta (float): weights of TCKD and NCKD for positive pairs (TPRD: 1, 1).

    Returns:
        Tensor: ``[...]`` float32 loss of every pair: ``alpha * TCKD + beta * NCKD`` for
        positives, ``KL`` for the others.
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f'decoupled KD: student logits {tuple(student_logits.shape)} and '
                         f'teacher logits {tuple(teacher_logits.shape)} must have the same '
                         f'shape (one teacher prediction per student prediction)')
    C = student_logits.size(-1)
    zs = student_logits.float().reshape(-1, C)
    zt = teacher_logits.detach().float().reshape(-1, C)
    if temperature != 1:
        zs, zt = zs / temperature, zt / temperature
    ls, lt = F.log_softmax(zs, -1), F.log_softmax(zt, -1)
    loss = _kl_rows(lt, ls)
    if pos_labels is not None:
        if pos_labels.shape != student_logits.shape[:-1]:
            raise ValueError(f'decoupled KD: pos_labels must have shape '
                             f'{tuple(student_logits.shape[:-1])} (one label or -1 per pair), '
                             f'got {tuple(pos_labels.shape)}')
        labels = pos_labels.reshape(-1)
        # DKD only on the positive rows (a few percent of the pairs), with one host sync: the
        # number of positives and the largest label packed in one integer, then the rows by
        # nonzero_static (no second sync)
        is_pos = labels >= 0
        packed = int(is_pos.sum() * _PACK + (labels.max() + 1).clamp(0, _PACK - 1)) \
            if labels.numel() else 0
        n_pos, max_label = packed // _PACK, packed % _PACK - 1
        if n_pos:
            if C < 2:
                raise ValueError('decoupled KD needs at least 2 classes for a non-target part')
            if max_label >= C:
                raise ValueError(f'decoupled KD: a positive label ({max_label}) is >= '
                                 f'the number of classes ({C})')
            rows = torch.nonzero_static(is_pos, size=n_pos).squeeze(1)
            zs_p = zs.index_select(0, rows)  # the student's log-softmax is recomputed on
            # the few rows: cheaper in backward than scattering a second gradient back
            dkd = _dkd_rows(zs_p, zt.index_select(0, rows), F.log_softmax(zs_p, -1),
                            lt.index_select(0, rows), labels.index_select(0, rows), alpha, beta)
            loss = loss.index_put((rows, ), dkd)
    if temperature != 1:
        loss = loss * temperature**2
    return loss.view(student_logits.shape[:-1])


@MODELS.register_module()
class DecoupledKDLoss(nn.Module):
    """TPRD's decoupled class distillation (DKD-style) for DETR query pairs.

    Positive pairs (teacher query matched to a GT of class ``c``) get TCKD + NCKD, the others
    the plain KL of the full softmax; with no positives it is exactly plain KL.

    Args:
        temperature (float): softmax temperature (TPRD: 1.0).
        alpha (float): TCKD weight. beta (float): NCKD weight.
        loss_weight (float): final multiplier.

    Forward: ``preds_S, preds_T [..., C]``, ``pos_labels [...]`` (-1 = not positive),
    optional per-pair ``weight [...]`` and ``avg_factor``: returns
    ``loss_weight * sum(weight * loss) / avg_factor`` (``avg_factor`` defaults to the number
    of pairs).
    """

    def __init__(self,
                 temperature: float = 1.0,
                 alpha: float = 1.0,
                 beta: float = 1.0,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f'DecoupledKDLoss: temperature must be > 0, got {temperature}')
        self.temperature = temperature
        self.alpha = alpha
        self.beta = beta
        self.loss_weight = loss_weight

    def forward(self,
                preds_S: Tensor,
                preds_T: Tensor,
                pos_labels: Optional[Tensor] = None,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[float] = None) -> Tensor:
        loss = decoupled_kd_loss(preds_S, preds_T, pos_labels, self.temperature, self.alpha,
                                 self.beta)
        if weight is not None:
            loss = loss * weight.float()
        if avg_factor is None:
            avg_factor = max(loss.numel(), 1)
        return self.loss_weight * loss.sum() / avg_factor
