"""Base MMRazor algorithm for distilling a DETR into a DETR: internals through one typed
structure, a frozen, deterministic, strictly loaded teacher.

A subclass declares its losses and implements one method::

    def compute_distill_losses(self, student_internals, teacher_internals,
                               batch_data_samples) -> dict[str, Tensor]

and gets, from this base, once for every distiller:

* a frozen, deterministic teacher: the whole teacher in ``eval()`` whatever ``train()`` is
  called with, ``requires_grad=False``, one ``torch.no_grad()`` forward per step without loss
  or matching, returned as detached
  :class:`~mmdet_ksdetr.distill.core.structures.DETRInternals`;
* the student's GT losses (``student.*``) and its internals from one pass, with the extra
  query groups of :meth:`student_groups` (decoded on the student's memory) and the attention
  maps of ``self.student_attention`` inside the returned internals: every piece of data a
  step needs travels in return values, never through attributes;
* the TPRD switch (``tprd``, :class:`~mmdet_ksdetr.distill.tprd.tprd_switch.TPRD`, kept as
  ``self.tprd_targets``) with :meth:`prediction_targets` / :meth:`teacher_targets`: TPRD enters
  a distiller only through the targets these return, never through a branch of its own;
  ``SUPPORTS_TPRD = False`` refuses ``tprd=True`` in one line;
* one loss contract: the class-level table ``LOSSES`` (name in ``distiller.distill_losses``
  -> class; ``loss_table()`` where it depends on arguments) and ``REQUIRED_LOSSES`` (at least
  one of them configured), bound by name and validated into ``self.losses``; the teacher
  layer of each student layer (:meth:`layer_pairs`) and the per-layer key prefix
  (:func:`layer_prefix`);
* checks that student and teacher are sigmoid-head DETRs with the same classes (distillers
  of predictions), ``init_student_from_teacher`` and strict teacher checkpoint loading;
* validation / test / ``predict`` run the student only; mmrazor's recorder-based losses in
  ``loss_forward_mappings`` still work (``distill.*``).
"""
import copy
import os.path as osp
import warnings
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.logging import print_log
from mmrazor.models.algorithms import SingleTeacherDistill
from mmrazor.models.utils import add_prefix
from torch import nn

from mmdet_ksdetr.distill.core.capture import capture_detr, check_detr, get_detr_internals
from mmdet_ksdetr.distill.core.structures import DecodedGroup, DETRInternals
from mmdet_ksdetr.distill.core.teacher_checkpoint import (TeacherCheckpointError,
                                                          copy_teacher_params_to_student,
                                                          load_teacher_checkpoint)
from mmdet_ksdetr.distill.tprd.refinement import RefinedTeacher
from mmdet_ksdetr.distill.tprd.tprd_switch import TPRD, TeacherTargets
from mmdet_ksdetr.utils.checks import is_url
from mmdet_ksdetr.utils.loss_keys import layer_prefix

__all__ = ['DETRDistillBase', 'TeacherCheckpointError', 'load_teacher_checkpoint',
           'teacher_layer_map', 'layer_prefix', 'layer_losses', 'copy_teacher_params_to_student']


def teacher_layer_map(num_student_layers: int, num_teacher_layers: int,
                      layer_by_layer: bool = True) -> List[int]:
    """Teacher decoder layer that gives the targets of each student decoder layer.

    Layer-by-layer with equal depths is the identity. With different depths, student layer l
    takes teacher layer ``round((l + 1) * L_t / L_s) - 1``, so the last layers always pair up.
    ``layer_by_layer=False``: every student layer learns from the teacher's last layer.
    """
    if num_student_layers < 1 or num_teacher_layers < 1:
        raise ValueError('both decoders need at least one layer')
    if not layer_by_layer:
        return [num_teacher_layers - 1] * num_student_layers
    return [
        min(max(int(round((l + 1) * num_teacher_layers / num_student_layers)) - 1, 0),
            num_teacher_layers - 1) for l in range(num_student_layers)
    ]


def layer_losses(parts: Dict, layer: int, num_layers: int, suffix: str = '') -> Dict:
    """``parts`` of student layer ``layer`` keyed ``{prefix}{name}{suffix}``."""
    prefix = layer_prefix(layer, num_layers)
    return {f'{prefix}{name}{suffix}': value for name, value in parts.items()}


class DETRDistillBase(SingleTeacherDistill):
    """Single-teacher distillation between two DETR-family detectors (see the module doc).

    Args:
        architecture: the student config (an mmdet DETR-family detector; inline dicts need
            ``_scope_='mmdet'`` inside ``_scope_='mmrazor'``).
        teacher: the teacher config (same rules).
        teacher_ckpt: checkpoint of the trained teacher (without it the teacher is random and
            a warning is issued).
        teacher_strict: see :func:`load_teacher_checkpoint`.
        distiller: a ``ConfigurableDistiller`` config holding the distillation loss modules
            (``distill_losses``) and optional recorder-based losses.
        keep_denoising: keep DINO denoising queries in the student internals (default: off).
        tprd (bool): the TPRD switch (:class:`~mmdet_ksdetr.distill.tprd.tprd_switch.TPRD`).
        teacher_assigner (dict, optional): TPRD's teacher-to-GT matcher (default focal 2 /
            L1 5 / GIoU 2).
        init_student_from_teacher (list[str]): teacher parameter names (substrings or globs)
            copied into the student after ``init_weights`` (e.g. ``['level_embed']``).
        **kwargs: other ``SingleTeacherDistill`` / ``BaseAlgorithm`` arguments
            (``calculate_student_loss``, ``data_preprocessor``, ...).

    Loss keys: ``student.*`` (GT losses), ``distill.*`` (distillation losses).
    """

    #: the distillation losses read from ``distiller.distill_losses``: name -> class
    LOSSES: Dict[str, type] = {}
    #: at least one of these must be configured (empty: none needed)
    REQUIRED_LOSSES: Sequence[str] = ()
    #: recorder-based losses (``distiller.loss_forward_mappings``) may stand in for REQUIRED
    ALLOWS_MAPPED_LOSSES = False
    #: the distiller has a TPRD variant (``tprd=True``)
    SUPPORTS_TPRD = True
    #: distils predictions: needs sigmoid heads with the same classes in both models
    DISTILS_PREDICTIONS = True
    #: decoder attention recorders, set by subclasses that distil attention (configuration)
    student_attention = None
    teacher_attention = None

    def __init__(self, architecture, teacher, teacher_ckpt: Optional[str] = None,
                 teacher_strict: bool = True, distiller: Optional[dict] = None,
                 keep_denoising: bool = False, teacher_trainable: bool = False,
                 tprd: bool = False, teacher_assigner: Optional[dict] = None,
                 init_student_from_teacher: Sequence[str] = (), **kwargs):
        if teacher_trainable:
            raise ValueError(f'{type(self).__name__} keeps the teacher frozen: '
                             f'teacher_trainable=True is not supported')
        if tprd and not self.SUPPORTS_TPRD:
            raise ValueError(f'{type(self).__name__} has no TPRD variant (TPRD refines the '
                             f'teacher\'s per-layer predictions, which it does not distil): '
                             f'remove tprd=True, or combine TPRD with KDDETR, D3ETR, QSKD or '
                             f'DETRDistill')
        # mmdet's DeformableDETR writes into its bbox_head config while building: build from
        # copies so a config (or a dict shared by student and teacher) can be built again
        architecture = copy.deepcopy(architecture) if isinstance(architecture, dict) \
            else architecture
        teacher = copy.deepcopy(teacher) if isinstance(teacher, dict) else teacher
        # a release teacher_ckpt is converted for (and checked against) this config's teacher
        teacher_cfg = copy.deepcopy(teacher) if isinstance(teacher, dict) else None
        super().__init__(architecture=architecture, teacher=teacher, teacher_ckpt=None,
                         teacher_trainable=False,
                         distiller=distiller or dict(type='ConfigurableDistiller'), **kwargs)
        check_detr(self.student, 'student (architecture)')
        check_detr(self.teacher, 'teacher')
        self.keep_denoising = keep_denoising
        self.tprd_targets = TPRD(tprd, teacher_assigner, owner=type(self).__name__)
        if isinstance(init_student_from_teacher, str):
            init_student_from_teacher = [init_student_from_teacher]
        self.init_student_from_teacher = list(init_student_from_teacher)
        # a teacher file that is gone (its work dir cleaned up) is loaded in init_weights(), which
        # training runs and testing does not: a distillation checkpoint brings teacher.* itself
        self._deferred_teacher_ckpt = None
        if teacher_ckpt and not is_url(teacher_ckpt) and not osp.isfile(teacher_ckpt):
            self._deferred_teacher_ckpt = (teacher_ckpt, teacher_strict, teacher_cfg)
            warnings.warn(f'teacher checkpoint "{teacher_ckpt}" does not exist: the teacher '
                          f'weights must come from the checkpoint loaded into this model '
                          f'(testing a distillation checkpoint); training will stop')
        elif teacher_ckpt:
            load_teacher_checkpoint(self.teacher, teacher_ckpt, strict=teacher_strict,
                                    cfg=teacher_cfg)
            self.teacher._is_init = True  # runner.init_weights() must not overwrite it
        else:
            warnings.warn(f'{type(self).__name__}: no teacher_ckpt given, the teacher is '
                          f'randomly initialised (only useful for tests)')
        self.teacher.requires_grad_(False)
        self.teacher.eval()
        print_log(f'{type(self).__name__}: teacher frozen '
                  f'({sum(p.numel() for p in self.teacher.parameters()) / 1e6:.2f}M parameters, '
                  f'eval mode, no gradients)', logger='current')
        if self.DISTILS_PREDICTIONS:
            self._check_prediction_heads()
        self.losses = self.bind_losses(self.loss_table(), self.REQUIRED_LOSSES,
                                       self.ALLOWS_MAPPED_LOSSES)

    @property
    def tprd(self) -> bool:
        """Whether the TPRD switch is on (the targets say it to the losses)."""
        return self.tprd_targets.enabled

    # ---------------------------------------------------------------- set-up plumbing
    def _check_prediction_heads(self):
        name = type(self).__name__
        s_head, t_head = self.student.bbox_head, self.teacher.bbox_head
        for role, head in (('student', s_head), ('teacher', t_head)):
            if not getattr(getattr(head, 'loss_cls', None), 'use_sigmoid', False):
                raise ValueError(f'{name} needs sigmoid classification heads (FocalLoss, as in '
                                 f'Deformable / Conditional / DAB-DETR / DINO); the {role} '
                                 f'head {type(head).__name__} uses a softmax')
        if s_head.num_classes != t_head.num_classes:
            raise ValueError(f'{name}: student has {s_head.num_classes} classes, teacher '
                             f'{t_head.num_classes}; they must predict the same classes')

    def loss_table(self) -> Dict[str, type]:
        """The losses this distiller reads (name -> class): ``LOSSES`` unless a distiller's
        table depends on its arguments."""
        return dict(self.LOSSES)

    def bind_losses(self, table: Dict[str, type], required: Sequence[str] = (),
                    allow_mapped: bool = False) -> Dict[str, nn.Module]:
        """The configured ``distiller.distill_losses`` (those not fed by
        ``loss_forward_mappings``) by name, validated against ``table`` (name -> class): an
        unknown name or a wrong class is a one-line error, and at least one of ``required`` must
        be configured (unless ``allow_mapped`` and recorder-based losses exist)."""
        name, mapped = type(self).__name__, set(self.distiller.loss_forward_mappings)
        bound = {}
        for loss_name, module in self.distiller.distill_losses.items():
            if loss_name in mapped:
                continue
            if loss_name not in table:
                raise ValueError(f'{name}: unknown distill loss "{loss_name}"; use '
                                 f'{sorted(table)} or distiller.loss_forward_mappings')
            if not isinstance(module, table[loss_name]):
                raise TypeError(f'{name}: "{loss_name}" must be a {table[loss_name].__name__}, '
                                f'got {type(module).__name__}')
            bound[loss_name] = module
        if required and not set(required) & set(bound) and not (allow_mapped and mapped):
            what = ' and/or '.join(f'"{k}" ({table[k].__name__})' for k in required)
            raise ValueError(f'{name}: add {what} to distiller.distill_losses')
        return bound

    def init_weights(self):
        super().init_weights()
        if self._deferred_teacher_ckpt is not None:  # training needs the teacher file
            load_teacher_checkpoint(self.teacher, *self._deferred_teacher_ckpt)
        if self.init_student_from_teacher:
            copy_teacher_params_to_student(self.student, self.teacher,
                                           self.init_student_from_teacher)

    def train(self, mode: bool = True):
        """Train the student; the whole teacher always stays in ``eval()``."""
        super().train(mode)
        self.teacher.eval()
        return self

    # ---------------------------------------------------------------- per-step helpers
    @staticmethod
    def layer_pairs(student: DETRInternals, teacher: DETRInternals,
                    layer_by_layer: bool = True) -> List[int]:
        """The teacher layer of each student layer (:func:`teacher_layer_map`)."""
        return teacher_layer_map(student.num_layers, teacher.num_layers, layer_by_layer)

    def teacher_targets(self, teacher_logits, teacher_boxes, batch_data_samples,
                        refine: Optional[bool] = None) -> RefinedTeacher:
        """Teacher GT assignment of every layer, TPRD-refined when ``refine`` (default:
        ``self.tprd``)."""
        return self.tprd_targets(teacher_logits, teacher_boxes, batch_data_samples,
                                 refine=refine)

    def prediction_targets(self, teacher: DETRInternals, batch_data_samples) -> TeacherTargets:
        """The teacher's prediction targets: TPRD-refined with decoupled-loss positives when
        ``tprd``, else the raw teacher (``pos_labels=None``)."""
        return self.tprd_targets.prediction_targets(teacher.cls_logits, teacher.bbox_preds,
                                                    batch_data_samples)

    # ---------------------------------------------------------------- forwards
    def teacher_forward(self, batch_inputs, batch_data_samples) -> DETRInternals:
        """One no-grad ``eval()`` teacher forward (no loss); detached internals (with the
        teacher's attention maps when ``teacher_attention`` is set)."""
        self.distiller.set_deliveries_override(False)
        with torch.no_grad(), self.distiller.teacher_recorders, self.distiller.deliveries:
            internals = get_detr_internals(self.teacher, batch_inputs, batch_data_samples,
                                           attention=self.teacher_attention)
        return internals.detach()

    def student_groups(self, teacher_internals: DETRInternals) -> List:
        """Query groups the student decodes in its step (:class:`QueryGroup` or functions of
        its decoder inputs); none by default."""
        return []

    @staticmethod
    def group_of(internals: DETRInternals, name: str) -> DecodedGroup:
        """The query group ``name`` the student decoded in its step (a clear error if the
        internals were captured without it)."""
        if name not in internals.groups:
            raise RuntimeError(f'the student internals lack the "{name}" query group; capture '
                               f'them with student_forward(..., teacher_internals) or '
                               f'get_detr_internals(..., groups=algo.student_groups(t))')
        return internals.groups[name]

    def student_forward(self, batch_inputs, batch_data_samples,
                        teacher_internals: Optional[DETRInternals] = None):
        """The student's forward: ``(gt_losses, internals)`` from one pass (``gt_losses``
        empty when ``calculate_student_loss`` is False). With ``teacher_internals`` the
        internals hold the groups of :meth:`student_groups`."""
        groups = self.student_groups(teacher_internals) \
            if teacher_internals is not None else []
        self.distiller.set_deliveries_override(True)
        with self.distiller.student_recorders, self.distiller.deliveries:
            capture = capture_detr(self.student, batch_inputs, batch_data_samples,
                                   loss=self.calculate_student_loss, groups=groups,
                                   attention=self.student_attention,
                                   keep_denoising=self.keep_denoising)
        return capture.losses, capture.internals

    def predict(self, batch_inputs, data_samples: Optional[List] = None, rescale: bool = True):
        """The student's ``predict`` (mmdet-style alias of ``forward(mode='predict')``)."""
        return self.student.predict(batch_inputs, data_samples, rescale=rescale)

    def loss(self, batch_inputs, data_samples: Optional[List] = None) -> Dict:
        teacher = self.teacher_forward(batch_inputs, data_samples)
        student_losses, student = self.student_forward(
            batch_inputs, data_samples, None if self.distillation_stopped else teacher)
        losses = add_prefix(student_losses, 'student')
        if not self.distillation_stopped:
            distill = self.compute_distill_losses(student, teacher, data_samples)
            distill.update(self.distiller.compute_distill_losses())
            losses.update(add_prefix(distill, 'distill'))
        return losses

    def compute_distill_losses(self, student_internals: DETRInternals,
                               teacher_internals: DETRInternals,
                               batch_data_samples: List) -> Dict:
        """Distillation losses (names containing ``loss``) from the two internals; the
        teacher's are detached, the student's carry gradients."""
        raise NotImplementedError
