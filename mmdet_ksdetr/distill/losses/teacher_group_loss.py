"""Query-prior assignment distillation, the "teacher group" of DETRDistill (spec §1.3, §6.4)."""
import inspect
from functools import partial
from typing import Callable, Dict, List, Sequence

import torch
from mmdet.models.dense_heads import DETRHead
from mmdet.models.losses import QualityFocalLoss
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy
from mmdet.utils import reduce_mean
from mmrazor.registry import MODELS
from torch import nn

__all__ = ['TeacherGroupLoss']

_ASSIGNMENTS = ('rematch', 'teacher')


def _head_outputs(student, decoder_outputs):
    params = inspect.signature(student.bbox_head.forward).parameters
    outs = student.bbox_head(**{k: v for k, v in decoder_outputs.items() if k in params})
    return outs[0], outs[1]


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
    if head.sync_cls_avg_factor:
        cls_avg_factor = reduce_mean(cls_scores.new_tensor([cls_avg_factor]))
    cls_avg_factor = max(cls_avg_factor, 1)
    loss_cls = head.loss_cls(cls_scores.reshape(-1, head.cls_out_channels), labels,
                             label_weights, avg_factor=cls_avg_factor)
    num_pos = torch.clamp(reduce_mean(cls_scores.new_tensor([num_pos])), min=1).item()
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

    Inputs: the student detector, the student's and teacher's
    :class:`~mmdet_ksdetr.models.detr_internals.DETRInternals` (teacher detached), the batch's
    data samples and, per student layer, the teacher layer to take assignments from.
    The group has the teacher's query count N_t; reference points of a Deformable-DETR student
    come from the student's ``reference_points_fc`` applied to the teacher's ``query_pos``,
    otherwise from the teacher's initial references (two-stage / DINO).

    ``same_decoder_pass=True`` (default): the algorithm decodes the group inside the student's
    own decoder pass, concatenated to the student's queries with a block-diagonal
    self-attention mask (:mod:`~mmdet_ksdetr.models.merged_decoding`): the same outputs as a
    separate pass, but every decoder operation and its backward runs once. Detectors whose
    decoder is not a stock mmdet one get a separate pass, as with ``False``.

    Returns the DETR loss dict of the group with keys prefixed ``teacher_group.``, weighted.
    """

    GROUP_NAME = 'teacher_group'

    def __init__(self, assignment: str = 'rematch', loss_weight: float = 1.0,
                 same_decoder_pass: bool = True):
        super().__init__()
        if assignment not in _ASSIGNMENTS:
            raise ValueError(f'TeacherGroupLoss: assignment must be one of {_ASSIGNMENTS} '
                             f'("rematch" = released code, "teacher" = paper), got '
                             f'{assignment!r}')
        self.assignment = assignment
        self.loss_weight = loss_weight
        self.same_decoder_pass = same_decoder_pass

    def extra_group(self, student, teacher_internals) -> Callable[[Dict], Dict]:
        """The group for :func:`~mmdet_ksdetr.models.detr_internals.record_detr_internals`:
        maps the student's ``forward_decoder`` inputs to the group's."""
        return partial(self.group_decoder_inputs, student, teacher_internals=teacher_internals)

    def group_decoder_inputs(self, student, decoder_inputs: Dict, teacher_internals) -> dict:
        """The student's own decoder keyword arguments (``decoder_inputs``) with the teacher's
        queries swapped in."""
        inputs = dict(decoder_inputs)
        t = teacher_internals
        if t.queries is None or 'query' not in inputs:
            raise ValueError('TeacherGroupLoss needs content queries (`query`) in both '
                             'detectors\' forward_decoder inputs')
        if t.queries.shape[-1] != inputs['query'].shape[-1]:
            raise ValueError(f'TeacherGroupLoss: teacher queries have {t.queries.shape[-1]} '
                             f'dims, the student decoder {inputs["query"].shape[-1]}: the '
                             f'teacher group needs the same embed_dims')
        inputs['query'] = t.queries.detach()
        if 'query_pos' in inputs:
            if t.query_pos is None or t.query_pos.shape[-1] != inputs['query_pos'].shape[-1]:
                raise ValueError('TeacherGroupLoss: the student decoder takes query_pos but the '
                                 'teacher has none of the same size (different DETR variants)')
            inputs['query_pos'] = t.query_pos.detach()
        if 'reference_points' in inputs:
            ref = inputs['reference_points']
            if (ref.shape[-1] == 2 and hasattr(student, 'reference_points_fc')
                    and t.query_pos is not None):
                inputs['reference_points'] = student.reference_points_fc(
                    t.query_pos.detach()).sigmoid()
            elif t.reference_points is not None and \
                    t.reference_points.shape[-1] == ref.shape[-1]:
                inputs['reference_points'] = t.reference_points[0].detach()
            else:
                raise ValueError('TeacherGroupLoss: cannot build reference points for the '
                                 'teacher queries (student and teacher differ in kind)')
        if 'dn_mask' in inputs:
            inputs['dn_mask'] = None  # the group has no denoising queries
        return inputs

    def forward(self, student, student_internals, teacher_internals,
                batch_data_samples: List, teacher_layers: Sequence[int]) -> dict:
        outputs = student_internals.group_decoder_outputs.get(self.GROUP_NAME)
        if outputs is None:  # not decoded along with the student's pass: a pass of its own
            outputs = student.forward_decoder(**self.group_decoder_inputs(
                student, student_internals.decoder_inputs, teacher_internals))
        cls_scores, bbox_preds = _head_outputs(student, outputs)
        head = student.bbox_head
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
            losses, num = {}, len(teacher_layers)
            for l, tl in enumerate(teacher_layers):
                with torch.no_grad():
                    targets = head.get_targets(list(t.cls_logits[tl]), list(t.bbox_preds[tl]),
                                               gts, metas)
                parts = _loss_given_targets(head, cls_scores[l], bbox_preds[l], targets, metas)
                prefix = '' if l == num - 1 else f'd{l}.'
                for key, value in zip(('loss_cls', 'loss_bbox', 'loss_iou'), parts):
                    losses[prefix + key] = value
        return {f'teacher_group.{k}': v * self.loss_weight for k, v in losses.items()}
