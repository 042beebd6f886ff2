"""Query-prior assignment distillation, the "teacher group" of DETRDistill."""
from typing import List, Sequence

import torch
from mmdet.models.dense_heads import DETRHead
from mmdet.models.losses import QualityFocalLoss
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy
from mmdet.utils import reduce_mean
from mmrazor.registry import MODELS
from torch import nn

from mmdet_ksdetr.utils.loss_keys import per_layer_losses

__all__ = ['TeacherGroupLoss']

_ASSIGNMENTS = ('rematch', 'teacher')


def _loss_given_targets(head, cls_scores, bbox_preds, targets, batch_img_metas):
    """DETR's per-layer loss (same normalisation as ``DETRHead.loss_by_feat_single``) with the
    targets given instead of re-assigned."""
    (labels_list, label_weights_list, bbox_targets_list, bbox_weights_list, num_pos,
     num_neg) = targets
    labels = torch.cat(labels_list)
    label_weights = torch.cat(label_weights_list)
    bbox_targets = torch.cat(bbox_targets_list)
    bbox_weights = torch.cat(bbox_weights_list)
    cls_avg_factor = num_pos * 1.0 + num_neg * head.bg_cls_weight
    if head.sync_cls_avg_factor:  # stays on the device (no max() of a tensor: a host sync)
        cls_avg_factor = reduce_mean(cls_scores.new_tensor([cls_avg_factor])).clamp(min=1)
    else:
        cls_avg_factor = max(cls_avg_factor, 1)
    loss_cls = head.loss_cls(cls_scores.reshape(-1, head.cls_out_channels), labels,
                             label_weights, avg_factor=cls_avg_factor)
    # a float32 device scalar, not .item(): no host sync per layer
    num_pos = torch.clamp(reduce_mean(cls_scores.new_tensor(num_pos, dtype=torch.float32)),
                          min=1)
    factors = torch.cat([
        bbox_preds.new_tensor([m['img_shape'][1], m['img_shape'][0]] * 2).expand(
            bbox_preds.shape[1], 4) for m in batch_img_metas
    ])
    bbox_preds = bbox_preds.reshape(-1, 4)
    loss_iou = head.loss_iou(bbox_cxcywh_to_xyxy(bbox_preds) * factors,
                             bbox_cxcywh_to_xyxy(bbox_targets) * factors, bbox_weights,
                             avg_factor=num_pos)
    loss_bbox = head.loss_bbox(bbox_preds, bbox_targets, bbox_weights, avg_factor=num_pos)
    return loss_cls, loss_bbox, loss_iou


@MODELS.register_module()
class TeacherGroupLoss(nn.Module):
    """Query-prior assignment distillation ("teacher group"): the teacher's learned decoder
    queries are decoded by the *student's* decoder (on the student's encoder memory, as a
    separate group without self-attention to the student's own queries) and the student's head
    is trained on these predictions with the ordinary DETR detection loss. The well-trained
    teacher queries give the student stable query-to-object assignments.

    ``assignment='rematch'`` (default) reproduces the released code, which Hungarian-matches the
    group's predictions to the GT again; ``assignment='teacher'`` follows the paper: query i of
    the group is supervised by the GT that teacher query i was assigned to (the student head's
    assigner run on teacher layer ``teacher_layers[l]``'s predictions).

    The loss computes losses only: the algorithm decodes the group (the teacher's queries as a
    :class:`~mmdet_ksdetr.distill.core.query_group.QueryGroup`, N_t queries; reference
    points of a Deformable-DETR student come from the student's ``reference_points_fc`` applied
    to the teacher's ``query_pos``, otherwise from the teacher's initial references) in the
    student's step and passes the decoded group here.

    Inputs: the student's head (its DETR loss and assigner), the student's decoded group
    (:class:`~mmdet_ksdetr.distill.core.structures.DecodedGroup`, (L, B, N_t, ...)), the
    teacher's :class:`~mmdet_ksdetr.distill.core.structures.DETRInternals` (detached), the
    batch's data samples and, per student layer, the teacher layer to take assignments from.

    Returns the DETR loss dict of the group with keys prefixed ``teacher_group.``, weighted.
    """

    GROUP_NAME = 'teacher_group'

    def __init__(self, assignment: str = 'rematch', loss_weight: float = 1.0):
        super().__init__()
        if assignment not in _ASSIGNMENTS:
            raise ValueError(f'TeacherGroupLoss: assignment must be one of {_ASSIGNMENTS} '
                             f'("rematch" = released code, "teacher" = paper), got '
                             f'{assignment!r}')
        self.assignment = assignment
        self.loss_weight = loss_weight

    def forward(self, head, decoded, teacher_internals, batch_data_samples: List,
                teacher_layers: Sequence[int]) -> dict:
        cls_scores, bbox_preds = decoded.cls_logits, decoded.bbox_preds
        gts = [s.gt_instances for s in batch_data_samples]
        metas = [s.metainfo for s in batch_data_samples]
        if self.assignment == 'rematch':
            losses = DETRHead.loss_by_feat(head, cls_scores, bbox_preds, gts, metas)
        else:
            if isinstance(head.loss_cls, QualityFocalLoss):
                raise NotImplementedError('TeacherGroupLoss(assignment="teacher") does not '
                                          'support QualityFocalLoss heads')
            if len(teacher_layers) != cls_scores.shape[0]:
                raise ValueError('TeacherGroupLoss: one teacher layer per student layer needed')
            t = teacher_internals

            def layer_parts(l, tl):
                with torch.no_grad():
                    targets = head.get_targets(list(t.cls_logits[tl]), list(t.bbox_preds[tl]),
                                               gts, metas)
                return _loss_given_targets(head, cls_scores[l], bbox_preds[l], targets, metas)

            losses = per_layer_losses(('loss_cls', 'loss_bbox', 'loss_iou'),
                                      (layer_parts(l, tl) for l, tl in enumerate(teacher_layers)),
                                      len(teacher_layers))
        return {f'teacher_group.{k}': v * self.loss_weight for k, v in losses.items()}
