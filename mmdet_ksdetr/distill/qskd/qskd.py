"""QSKD (query selection KD, arXiv 2409.06443) with the optional TPRD refinement of the
teacher predictions."""
from typing import Dict

import numpy as np
import torch
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy, bbox_overlaps
from mmrazor.registry import MODELS
from scipy.optimize import linear_sum_assignment

from mmdet_ksdetr.distill.core import DecoderAttentionRecorder
from mmdet_ksdetr.distill.core.detr_distill_base import DETRDistillBase, layer_prefix
from mmdet_ksdetr.distill.core.distill_matcher import DistillHungarianMatcher
from mmdet_ksdetr.distill.core.pair_kd_loss import PairKDLoss
from mmdet_ksdetr.distill.qskd.qskd_feature_loss import AttnGuidedFeatureLoss
from mmdet_ksdetr.distill.tprd.refinement import assign_teacher_layers, gt_from_data_samples, pad_gt
from mmdet_ksdetr.utils.device import to_device, to_host
from mmdet_ksdetr.utils.divergence import check_finite_cost

__all__ = ['QSKD']

LAYER_PAIRINGS = ('release', 'same_layer')


def _giou_to_gt(boxes, gt_boxes, num_gts, factors):
    """(L, B, N, G) GIoU of every predicted box with every GT of its image (-2 at padded GT
    slots). boxes (L, B, N, 4) and gt_boxes (B, G, 4) normalised cxcywh; factors (B, 4)."""
    L, B, N, _ = boxes.shape
    G = gt_boxes.shape[1]
    if G == 0:
        return boxes.new_zeros((L, B, N, 0), dtype=torch.float32)
    f = factors.float()
    pred = bbox_cxcywh_to_xyxy(boxes.float()) * f[None, :, None, :]
    gt = (bbox_cxcywh_to_xyxy(gt_boxes.float()) * f[:, None, :]).unsqueeze(0)
    gt = gt.expand(L, -1, -1, -1)
    giou = bbox_overlaps(pred.reshape(L * B, N, 4), gt.reshape(L * B, G, 4), mode='giou')
    giou = giou.view(L, B, N, G)
    valid = torch.arange(G, device=boxes.device).view(1, 1, 1, G) < num_gts.view(1, B, 1, 1)
    return giou.masked_fill(~valid, -2.0)


def _max_giou_to_gt(boxes, gt_boxes, num_gts, factors):
    """(L, B, N) max GIoU of every predicted box with the GT of its image (-2 without GT)."""
    giou = _giou_to_gt(boxes, gt_boxes, num_gts, factors)
    if giou.shape[-1] == 0:
        return giou.new_full(giou.shape[:-1], -2.0)
    return giou.amax(-1)


def _feature_query_weights(gt_inds, giou, hard_negative_giou=0.0):
    """Which teacher queries guide the feature mask, and their weights ``1 + GIoU``.

    Positives (``gt_inds >= 0``) take the GIoU to the GT they are assigned to, hard negatives
    (unassigned, best GIoU above ``hard_negative_giou``) their best GIoU over the image's GT.

    Args:
        gt_inds: (..., N) assigned GT index per query, -1 if none.
        giou: (..., N, G) GIoU to every GT (-2 at padded slots).

    Returns:
        selected (..., N) bool and weights (..., N) float (0 where not selected).
    """
    if giou.shape[-1] == 0:
        none = torch.zeros(gt_inds.shape, dtype=torch.bool, device=gt_inds.device)
        return none, torch.zeros(gt_inds.shape, device=gt_inds.device)
    best = giou.amax(-1)
    matched = giou.gather(-1, gt_inds.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    positive = gt_inds >= 0
    selected = positive | (best > hard_negative_giou)
    weights = 1.0 + torch.where(positive, matched, best)
    return selected, torch.where(selected, weights, torch.zeros_like(weights))


def _query_of_gt(gt_inds, num_gt_slots):
    """(..., G) query index assigned to each GT (-1 if none) from (..., N) GT index per query
    (a one-to-one assignment). No device sync: unassigned queries write to a spare column."""
    N = gt_inds.shape[-1]
    out = gt_inds.new_full(gt_inds.shape[:-1] + (num_gt_slots + 1, ), -1)
    slot = torch.where(gt_inds >= 0, gt_inds, num_gt_slots)
    query = torch.arange(N, device=gt_inds.device).expand_as(gt_inds)
    return out.scatter(-1, slot, query)[..., :num_gt_slots]


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
    * **Attention-guided feature distillation** (:class:`AttnGuidedFeatureLoss`): the
      encoder memory compared under the mask made of the selected teacher queries' deformable
      cross-attention, weighted by ``1 + GIoU`` (positives: GIoU to their assigned GT; hard
      negatives: best GIoU). One feature term per decoder layer: the attention of teacher layer
      ``l`` with the selection of layer ``l - 1`` (layer 0 with the last layer's selection), as
      the TPRD release pairs them (``layer_pairing='release'``), or with layer ``l``'s own
      selection (``layer_pairing='same_layer'``).

    ``tprd=True``: the losses use the TPRD-refined teacher (the pairing still uses the raw
    teacher), and the class loss is the decoupled one (positive pairs: the GT class).

    Shapes: any query counts; equal ``num_classes``; the feature loss needs equal encoder
    memory shapes (B, S, D) (equal embed dims and feature levels; equal neck shapes with
    ``features='neck'``) and a deformable teacher decoder. DINO students: denoising queries
    excluded.

    Args:
        layer_by_layer (bool): student layer l learns from teacher layer l (mapped).
        matcher (dict): cost weights of the hard-negative matching.
        hard_negative_giou (float): unassigned queries with max GIoU to a GT above this are
            hard negatives (0).
        layer_pairing (str): which selection masks each teacher layer's attention in the
            feature loss: ``'release'`` (the previous layer's; layer 0: the last layer's) or
            ``'same_layer'``.
        **kwargs: :class:`DETRDistillBase` arguments (``tprd``, ...);
            ``distiller.distill_losses`` holds
            ``loss_pred`` (:class:`PairKDLoss`) and/or ``loss_feat``
            (:class:`AttnGuidedFeatureLoss`).

    Loss keys: ``distill.{loss_cls,loss_bbox,loss_iou,loss_feat}_kd`` (last student layer),
    ``distill.d{l}.*`` for earlier layers.
    """

    LOSSES = dict(loss_pred=PairKDLoss, loss_feat=AttnGuidedFeatureLoss)
    REQUIRED_LOSSES = tuple(LOSSES)

    def __init__(self, layer_by_layer: bool = True,
                 matcher: dict = dict(cls_cost=1.0, l1_cost=5.0, giou_cost=2.0),
                 hard_negative_giou: float = 0.0, layer_pairing: str = 'release', **kwargs):
        if layer_pairing not in LAYER_PAIRINGS:
            raise ValueError(f'QSKD: layer_pairing must be one of {LAYER_PAIRINGS}, got '
                             f'{layer_pairing!r}')
        super().__init__(**kwargs)
        self.layer_pairing = layer_pairing
        self.layer_by_layer = layer_by_layer
        self.matcher = DistillHungarianMatcher(**matcher)
        self.hard_negative_giou = float(hard_negative_giou)
        if 'loss_feat' in self.losses:  # the teacher's cross-attention, in its internals
            self.teacher_attention = DecoderAttentionRecorder(
                self.teacher.decoder, self_attn=False, cross_attn=True)

    @staticmethod
    def _hard_negative_pairs(cost, s_hn, t_hn):
        """Hungarian matching of student to teacher hard negatives, per image (host numpy):
        cost (B, Ns, Nt), masks (B, Ns) / (B, Nt) -> (b, s, t) index arrays."""
        out = [[], [], []]
        for b in range(cost.shape[0]):  # per image; the matching itself is scipy
            rows, cols = np.nonzero(s_hn[b])[0], np.nonzero(t_hn[b])[0]
            if len(rows) == 0 or len(cols) == 0:
                continue
            r, c = linear_sum_assignment(
                check_finite_cost(cost[b][np.ix_(rows, cols)], 'QSKD hard-negative matching'))
            out[0].append(np.full(len(r), b))
            out[1].append(rows[r])
            out[2].append(cols[c])
        return tuple(np.concatenate(x) if x else np.zeros(0, np.int64) for x in out)

    def _selected_pairs(self, cost, s_of_g, t_of_g, s_hn, t_hn):
        """Selected (positive and hard-negative) query pairs of every student layer, from the
        (L, B, Ns, Nt) hard-negative cost, the (L, B, G) query of each GT of both models and the
        (L, B, N) hard-negative masks; one device-to-host and one host-to-device copy.

        Returns per layer ``(pb, pg, ps, pt, hb, hs, ht)``: positives' image, GT slot,
        student and teacher query; hard negatives' image, student and teacher query."""
        device = cost.device
        cost, s_of_g, t_of_g, s_hn, t_hn = to_host(cost, s_of_g, t_of_g, s_hn, t_hn)
        arrays = []
        for l in range(cost.shape[0]):
            pb, pg = np.nonzero((s_of_g[l] >= 0) & (t_of_g[l] >= 0))
            arrays += [pb, pg, s_of_g[l][pb, pg], t_of_g[l][pb, pg]]
            arrays += self._hard_negative_pairs(cost[l], s_hn[l], t_hn[l])
        moved = to_device(arrays, device)
        return [moved[i:i + 7] for i in range(0, len(moved), 7)]

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
        t_giou_all = _giou_to_gt(t.bbox_preds, gt_boxes, num_gts, factors)  # raw teacher
        t_giou = (t_giou_all.amax(-1) if G else t_giou_all.new_full(t_giou_all.shape[:-1], -2.0))
        losses = {}
        t_attn = t.attention
        if 'loss_feat' in self.losses and t_attn is None:
            raise RuntimeError('QSKD: teacher attention was not recorded; compute the losses '
                               'through loss() (or teacher_forward())')

        thr = self.hard_negative_giou
        if 'loss_pred' in self.losses:
            s_gt = assign_teacher_layers(s.cls_logits.detach(), s.bbox_preds.detach(),
                                         batch_data_samples,
                                         getattr(self.student.bbox_head, 'assigner',
                                                 self.tprd_targets.assigner))
            s_giou = _max_giou_to_gt(s.bbox_preds.detach(), gt_boxes, num_gts, factors)
            cost = self.matcher.cost(s.cls_logits.detach(), s.bbox_preds.detach(),
                                     t.cls_logits[layers].sigmoid(), t.bbox_preds[layers],
                                     factors.expand(s.num_layers, -1, -1))
            t_gt_l = t_gt[list(layers)]  # (L_s, B, Nt): the teacher layer of each student one
            pairs = self._selected_pairs(
                cost, _query_of_gt(s_gt, G), _query_of_gt(t_gt_l, G), (s_gt < 0) & (s_giou > thr),
                (t_gt_l < 0) & (t_giou[list(layers)] > thr))
        for l, tl in enumerate(layers):
            prefix = layer_prefix(l, s.num_layers)
            if 'loss_pred' in self.losses:
                pb, pg, ps, pt, hb, hs, ht = pairs[l]
                b = torch.cat([pb, hb])
                si, ti = torch.cat([ps, hs]), torch.cat([pt, ht])
                pos = torch.cat([gt_labels[pb, pg], torch.full_like(hb, -1)])
                parts = self.losses['loss_pred'](
                    s.cls_logits[l][b, si], s.bbox_preds[l][b, si], t_logits[tl][b, ti],
                    t_boxes[tl][b, ti], factors[b], pos if targets.refined else None)
                losses.update({f'{prefix}{k}_kd': v for k, v in parts.items()})
            if 'loss_feat' in self.losses:
                losses[f'{prefix}loss_feat_kd'] = self._feature_loss(
                    s, t, tl, layers[l - 1] if self.layer_pairing == 'release' else tl,
                    t_gt, t_giou_all)
        return losses

    def _feature_loss(self, s, t, attn_layer, select_layer, t_gt, t_giou_all):
        """Feature loss under teacher layer ``attn_layer``'s cross-attention, masked by the
        queries teacher layer ``select_layer`` selects."""
        loss = self.losses['loss_feat']
        selected, qw = _feature_query_weights(t_gt[select_layer], t_giou_all[select_layer],
                                              self.hard_negative_giou)
        attn = t.attention
        if getattr(loss, 'features', 'memory') == 'memory':
            fs, ft = s.memory, t.memory
        else:
            fs, ft = s.neck_feats, t.neck_feats
        return loss(fs, ft, attn.cross_weights[attn_layer], attn.cross_locations[attn_layer],
                    attn.spatial_shapes, qw, selected)
