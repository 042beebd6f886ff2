"""Hungarian matching of student predictions to teacher predictions (DETRDistill, D3ETR, ...).

mmdet's ``HungarianAssigner`` matches predictions to hard GT labels; distillation matches them
to the teacher's *soft* predictions, so the cost is written here (as in the DETRDistill release):

    C_ij = w_cls * sum_c BCE(z^s_ic, p^t_jc)      (soft-label BCE summed over classes, not / C)
         + w_l1  * || b^s_i - b^t_j ||_1           (normalised cxcywh)
         - w_giou * GIoU(B^s_i, B^t_j)             (pixel xyxy)

The cost tensor of all layers and images is built by vectorised torch calls (on CPU in chunks
of a few (layer, image) matrices, so that the GIoU temporaries stay in cache); only the
assignment itself runs in scipy (CPU, float32), one ``linear_sum_assignment`` per (layer,
image). With N_s <= N_t every student query is matched; otherwise N_t of them are.
"""
import numpy as np
import torch
import torch.nn.functional as F
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy
from mmrazor.registry import TASK_UTILS
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from mmdet_ksdetr.utils.device import float32_region, to_device, to_host
from mmdet_ksdetr.utils.divergence import check_finite_cost

__all__ = ['DistillHungarianMatcher', 'soft_bce_cost', 'pairwise_giou']

#: cost elements per chunk on CPU (a few hundred KiB per temporary: stays in L2 cache)
CPU_CHUNK_ELEMENTS = 1 << 17


def soft_bce_cost(student_logits: Tensor, teacher_probs: Tensor) -> Tensor:
    """(..., Ns, Nt) matrix of ``sum_c BCEWithLogits(z^s_ic, p^t_jc)``.

    Uses ``BCE(z, p) = softplus(z) - p * z``, so the whole matrix is one matmul.
    """
    return F.softplus(student_logits).sum(-1, keepdim=True) - \
        student_logits @ teacher_probs.transpose(-1, -2)


def pairwise_giou(a: Tensor, b: Tensor, eps: float = 1e-6) -> Tensor:
    """(..., Na, Nb) GIoU of every xyxy box of ``a (..., Na, 4)`` with every one of
    ``b (..., Nb, 4)``; union and enclosing area clamped at ``eps`` (as mmdet's
    ``bbox_overlaps(mode='giou')``). Written with in-place operations on few temporaries."""
    ax1, ay1, ax2, ay2 = (t.unsqueeze(-1) for t in a.unbind(-1))  # (..., Na, 1)
    bx1, by1, bx2, by2 = (t.unsqueeze(-2) for t in b.unbind(-1))  # (..., 1, Nb)
    area_a = (ax2 - ax1) * (ay2 - ay1)
    area_b = (bx2 - bx1) * (by2 - by1)
    inter = torch.minimum(ax2, bx2).sub_(torch.maximum(ax1, bx1)).clamp_(min=0)
    inter.mul_(torch.minimum(ay2, by2).sub_(torch.maximum(ay1, by1)).clamp_(min=0))
    union = (area_a + area_b).sub_(inter).clamp_(min=eps)
    enclose = torch.maximum(ax2, bx2).sub_(torch.minimum(ax1, bx1)).clamp_(min=0)
    enclose.mul_(torch.maximum(ay2, by2).sub_(torch.minimum(ay1, by1)).clamp_(min=0))
    enclose.clamp_(min=eps)
    # iou - (enclose - union) / enclose
    return inter.div_(union).sub_((enclose - union).div_(enclose))


@TASK_UTILS.register_module()
class DistillHungarianMatcher:
    """One-to-one matching of student queries to teacher predictions by soft-BCE / L1 / GIoU
    cost (DETRDistill's Hungarian-matching logits distillation).

    Args:
        cls_cost, l1_cost, giou_cost: weights of the three costs (release: 1, 5, 2).

    :meth:`match` takes any number of leading batch dimensions ``K...`` (e.g. layers and
    images): student logits (K..., Ns, C), student boxes (K..., Ns, 4), teacher probabilities
    (K..., Nt, C), teacher boxes (K..., Nt, 4) (boxes normalised cxcywh) and image size factors
    (K..., 4) = ``[w, h, w, h]``; it returns ``(student_idx, teacher_idx)``, two LongTensors of
    shape (K..., M) with M = min(Ns, Nt), on the inputs' device.
    """

    def __init__(self, cls_cost: float = 1.0, l1_cost: float = 5.0, giou_cost: float = 2.0):
        for name, value in dict(cls_cost=cls_cost, l1_cost=l1_cost,
                                giou_cost=giou_cost).items():
            if not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f'DistillHungarianMatcher: {name} must be a number >= 0, '
                                 f'got {value!r}')
        if cls_cost == l1_cost == giou_cost == 0:
            raise ValueError('DistillHungarianMatcher: at least one cost weight must be > 0')
        self.cls_cost = float(cls_cost)
        self.l1_cost = float(l1_cost)
        self.giou_cost = float(giou_cost)

    @torch.no_grad()
    def cost(self, student_logits: Tensor, student_boxes: Tensor, teacher_probs: Tensor,
             teacher_boxes: Tensor, img_size_factors: Tensor) -> Tensor:
        """(K..., Ns, Nt) float32 cost matrices (see the module doc), float32 under autocast
        too (the soft-BCE matmul would otherwise run in half precision with --amp)."""
        with float32_region(student_logits):
            return self._cost(student_logits, student_boxes, teacher_probs, teacher_boxes,
                              img_size_factors)

    def _cost(self, student_logits, student_boxes, teacher_probs, teacher_boxes,
              img_size_factors):
        s_logits, t_probs = student_logits.float(), teacher_probs.float()
        s_boxes, t_boxes = student_boxes.float(), teacher_boxes.float()
        lead, ns, nt = s_logits.shape[:-2], s_logits.shape[-2], t_probs.shape[-2]
        factors = img_size_factors.float().expand(*lead, 4).reshape(-1, 1, 4)
        flat = [t.reshape(-1, *t.shape[-2:]) for t in (s_logits, t_probs, s_boxes, t_boxes)]
        total = s_logits.new_empty(factors.shape[0], ns, nt)
        step = factors.shape[0]
        if total.device.type == 'cpu':
            step = max(1, CPU_CHUNK_ELEMENTS // max(ns * nt, 1))
        for lo in range(0, factors.shape[0], step):
            sl, tp, sb, tb = (t[lo:lo + step] for t in flat)
            self._cost_chunk(total[lo:lo + step], sl, tp, sb, tb, factors[lo:lo + step])
        return total.view(*lead, ns, nt)

    def _cost_chunk(self, out, s_logits, t_probs, s_boxes, t_boxes, factors):
        """Fill ``out (k, Ns, Nt)`` with the cost of ``k`` (layer, image) matrices."""
        out.zero_()
        if self.cls_cost:
            out.add_(soft_bce_cost(s_logits, t_probs), alpha=self.cls_cost)
        if self.l1_cost:
            out.add_(torch.cdist(s_boxes, t_boxes, p=1), alpha=self.l1_cost)
        if self.giou_cost:
            giou = pairwise_giou(bbox_cxcywh_to_xyxy(s_boxes) * factors,
                                 bbox_cxcywh_to_xyxy(t_boxes) * factors)
            out.sub_(giou, alpha=self.giou_cost)

    @torch.no_grad()
    def match(self, student_logits: Tensor, student_boxes: Tensor, teacher_probs: Tensor,
              teacher_boxes: Tensor, img_size_factors: Tensor):
        if student_logits.shape[-1] != teacher_probs.shape[-1]:
            raise ValueError(
                f'student and teacher predict different class counts '
                f'({student_logits.shape[-1]} vs {teacher_probs.shape[-1]}): distillation '
                f'needs the same num_classes in both configs')
        cost = self.cost(student_logits, student_boxes, teacher_probs, teacher_boxes,
                         img_size_factors)
        lead, (ns, nt) = cost.shape[:-2], cost.shape[-2:]
        m = min(ns, nt)
        flat, = to_host(cost.reshape(-1, ns, nt))  # the one device-to-host copy
        check_finite_cost(flat, 'student-to-teacher distillation matching')
        s_idx = np.empty((flat.shape[0], m), dtype=np.int64)
        t_idx = np.empty((flat.shape[0], m), dtype=np.int64)
        for k in range(flat.shape[0]):
            rows, cols = linear_sum_assignment(flat[k])
            s_idx[k], t_idx[k] = rows, cols
        s_idx, t_idx = to_device([s_idx, t_idx], student_logits.device)
        return s_idx.view(*lead, m), t_idx.view(*lead, m)
