"""QSKD (query selection KD, arXiv 2409.06443) with the optional TPRD refinement (spec
``detr-distill.md`` §4, ``dac-detr-and-tprd.md`` B3)."""
from typing import Dict

import numpy as np
import torch
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy, bbox_overlaps
from mmrazor.registry import MODELS
from scipy.optimize import linear_sum_assignment

from ...utils.divergence import check_finite_cost
from ..internals import DecoderAttentionRecorder
from ..losses.pair_kd_loss import PairKDLoss
from ..losses.qskd_feature_loss import AttnGuidedFeatureLoss
from ..refinement import assign_teacher_layers, gt_from_data_samples, pad_gt
from ..task_modules.distill_matcher import DistillHungarianMatcher
from .detr_distill_base import DETRDistillBase, layer_prefix

__all__ = ['QSKD']


def _max_giou_to_gt(boxes, gt_boxes, num_gts, factors):
    """(L, B, N) max GIoU of every predicted box with the GT of its image (-2 without GT).
    boxes (L, B, N, 4) and gt_boxes (B, G, 4) normalised cxcywh; factors (B, 4)."""
    L, B, N, _ = boxes.shape
    G = gt_boxes.shape[1]
    if G == 0:
        return boxes.new_full((L, B, N), -2.0)
    f = factors.float()
    pred = bbox_cxcywh_to_xyxy(boxes.float()) * f[None, :, None, :]
    gt = (bbox_cxcywh_to_xyxy(gt_boxes.float()) * f[:, None, :]).unsqueeze(0).expand(L, -1, -1,
                                                                                      -1)
    giou = bbox_overlaps(pred.reshape(L * B, N, 4), gt.reshape(L * B, G, 4), mode='giou')
    giou = giou.view(L, B, N, G)
    valid = torch.arange(G, device=boxes.device).view(1, 1, 1, G) < num_gts.view(1, B, 1, 1)
    return giou.masked_fill(~valid, -2.0).amax(-1)


def _query_of_gt(gt_inds, num_gt_slots):
    """(B, G) query index assigned to each GT (-1 if none) from (B, N) GT index per query."""
    B, N = gt_inds.shape
    out = gt_inds.new_full((B, max(num_gt_slots, 1)), -1)
    b, q = (gt_inds >= 0).nonzero(as_tuple=True)
    out[b, gt_inds[b, q]] = q
    return out[:, :num_gt_slots]


@MODELS.register_module()
class QSKD(DETRDistillBase):
    """QSKD: distil the teacher's predictions only over *selected* query pairs and its features
    only where those queries attend.

    * **Group query selection** (per decoder layer): positive pairs are the student query and
      the teacher query assigned to the same GT (each model's own Hungarian GT assignment);
      hard negatives are unassigned queries whose box still overlaps a GT (max GIoU > 0), and
      the student's and teacher's hard negatives are Hungarian-matched to each other
      (soft-BCE / L1 / GIoU cost 1 / 5 / 2, on the *raw* teacher). Class (soft BCE) + L1 +
      GIoU over the selected pairs, averaged per pair (:class:`PairKDLoss`,
      ``normalizer='pairs'``).
    * **Attention-guided feature distillation** (:class:`AttnGuidedFeatureLoss`): neck
      features compared under the mask made of the selected teacher queries' deformable
      cross-attention, weighted by ``1 + GIoU``.

    ``tprd=True``: the losses use the TPRD-refined teacher (the pairing still uses the raw
    teacher), and the class loss is the decoupled one (positive pairs: the GT class).

    Shapes: any query counts; equal ``num_classes``; the feature loss needs equal neck shapes
    and a deformable teacher decoder. DINO students: denoising queries excluded.

    Args:
        layer_by_layer (bool): student layer l learns from teacher layer l (mapped).
        matcher (dict): cost weights of the hard-negative matching.
        hard_negative_giou (float): unassigned queries with max GIoU to a GT above this are
            hard negatives (0).
        **kwargs: :class:`DETRDistillBase` arguments (``tprd``, ...);
            ``distiller.distill_losses`` holds
            ``loss_pred`` (:class:`PairKDLoss`) and/or ``loss_feat``
            (:class:`AttnGuidedFeatureLoss`).

    Loss keys: ``distill.{loss_cls,loss_bbox,loss_iou,loss_feat}_kd`` (last student layer),
    ``distill.d{l}.*`` for earlier layers.
    """

    _LOSSES = dict(loss_pred=PairKDLoss, loss_feat=AttnGuidedFeatureLoss)

    def __init__(self, layer_by_layer: bool = True,
                 matcher: dict = dict(cls_cost=1.0, l1_cost=5.0, giou_cost=2.0),
                 hard_negative_giou: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.layer_by_layer = layer_by_layer
        self.matcher = DistillHungarianMatcher(**matcher)
        self.hard_negative_giou = float(hard_negative_giou)
        self.parts = self.bind_losses(self._LOSSES, required=tuple(self._LOSSES))
        if 'loss_feat' in self.parts:  # the teacher's cross-attention, in its internals
            self.teacher_attention = DecoderAttentionRecorder(
                self.teacher.decoder, self_attn=False, cross_attn=True)

    def _hard_negative_pairs(self, cost, s_hn, t_hn):
        """Hungarian matching of student to teacher hard negatives, per image: cost
        (B, Ns, Nt), masks (B, Ns) / (B, Nt) -> (b, s, t) index tensors."""
        device = cost.device
        cost_np = cost.detach().float().cpu().numpy()
        s_np, t_np = s_hn.cpu().numpy(), t_hn.cpu().numpy()
        out = [[], [], []]
        for b in range(cost_np.shape[0]):  # per image; the matching itself is scipy
            rows, cols = np.nonzero(s_np[b])[0], np.nonzero(t_np[b])[0]
            if len(rows) == 0 or len(cols) == 0:
                continue
            r, c = linear_sum_assignment(
                check_finite_cost(cost_np[b][np.ix_(rows, cols)], 'QSKD hard-negative matching'))
            out[0].append(np.full(len(r), b))
            out[1].append(rows[r])
            out[2].append(cols[c])
        if not out[0]:
            empty = torch.zeros(0, dtype=torch.long, device=device)
            return empty, empty, empty
        return tuple(torch.from_numpy(np.concatenate(x)).long().to(device) for x in out)

    def compute_distill_losses(self, student_internals, teacher_internals,
                               batch_data_samples) -> Dict:
        s, t = student_internals, teacher_internals
        layers = self.layer_pairs(s, t, self.layer_by_layer)
        factors = s.img_size_factors()
        targets = self.teacher_targets(t.cls_logits, t.bbox_preds, batch_data_samples)
        t_gt = targets.pos_gt_inds
        t_logits, t_boxes = targets.logits, targets.boxes  # refined iff tprd
        labels, gt_boxes = gt_from_data_samples(batch_data_samples)
        gt_labels, gt_boxes, num_gts = pad_gt(labels, gt_boxes, device=factors.device)
        G = gt_labels.shape[1]
        t_giou = _max_giou_to_gt(t.bbox_preds, gt_boxes, num_gts, factors)  # raw teacher
        losses = {}
        t_attn = t.attention
        if 'loss_feat' in self.parts and t_attn is None:
            raise RuntimeError('QSKD: teacher attention was not recorded; compute the losses '
                               'through loss() (or teacher_forward())')

        if 'loss_pred' in self.parts:
            s_gt = assign_teacher_layers(s.cls_logits.detach(), s.bbox_preds.detach(),
                                         batch_data_samples,
                                         getattr(self.student.bbox_head, 'assigner',
                                                 self.refiner.assigner))
            s_giou = _max_giou_to_gt(s.bbox_preds.detach(), gt_boxes, num_gts, factors)
            cost = self.matcher.cost(s.cls_logits.detach(), s.bbox_preds.detach(),
                                     t.cls_logits[layers].sigmoid(), t.bbox_preds[layers],
                                     factors.expand(s.num_layers, -1, -1))
        thr = self.hard_negative_giou
        for l, tl in enumerate(layers):
            prefix = layer_prefix(l, s.num_layers)
            t_hn = (t_gt[tl] < 0) & (t_giou[tl] > thr)
            if 'loss_pred' in self.parts:
                s_of_g, t_of_g = _query_of_gt(s_gt[l], G), _query_of_gt(t_gt[tl], G)
                pb, pg = ((s_of_g >= 0) & (t_of_g >= 0)).nonzero(as_tuple=True)
                ps, pt = s_of_g[pb, pg], t_of_g[pb, pg]
                hb, hs, ht = self._hard_negative_pairs(
                    cost[l], (s_gt[l] < 0) & (s_giou[l] > thr), t_hn)
                b = torch.cat([pb, hb])
                si, ti = torch.cat([ps, hs]), torch.cat([pt, ht])
                pos = torch.cat([gt_labels[pb, pg], torch.full_like(hb, -1)])
                parts = self.parts['loss_pred'](s.cls_logits[l][b, si], s.bbox_preds[l][b, si],
                                                t_logits[tl][b, ti], t_boxes[tl][b, ti],
                                                factors[b], pos if self.tprd else None)
                losses.update({f'{prefix}{k}_kd': v for k, v in parts.items()})
            if 'loss_feat' in self.parts:
                selected = (t_gt[tl] >= 0) | t_hn
                qw = torch.where(selected, 1.0 + t_giou[tl].clamp(min=-1.0),
                                 torch.zeros_like(t_giou[tl]))
                losses[f'{prefix}loss_feat_kd'] = self.parts['loss_feat'](
                    s.neck_feats, t.neck_feats, t_attn.cross_weights[tl],
                    t_attn.cross_locations[tl], t_attn.spatial_shapes, qw)
        return losses
