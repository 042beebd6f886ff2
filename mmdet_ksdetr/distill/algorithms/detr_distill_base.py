"""Base MMRazor algorithm for distilling a DETR into a DETR (DESIGN rules 5 and 6).

Subclasses implement one method::

    def compute_distill_losses(self, student_internals, teacher_internals,
                               batch_data_samples) -> dict[str, Tensor]

and get, from this base:

* a teacher that is frozen and deterministic: the *whole* teacher stays in ``eval()`` (dropout
  off, no DINO denoising queries) whatever ``train()`` is called with, its parameters have
  ``requires_grad=False`` (so the optimizer keeps no state for them), and it runs under
  ``torch.no_grad()``;
* one teacher forward per step, without the teacher's loss / Hungarian matching:
  ``extract_feat`` + ``forward_transformer`` + head forward, returned as a detached
  :class:`~mmdet_ksdetr.models.detr_internals.DETRInternals`;
* the student's own ``loss()`` (its GT losses, ``student.*``) and its internals from the same
  forward pass;
* strict teacher checkpoint loading (``weights_only``) that stops with a report of missing,
  unexpected and mis-shaped keys instead of silently leaving a random teacher;
* mmrazor's recorder-based losses still work: anything in the distiller's
  ``loss_forward_mappings`` is computed by ``ConfigurableDistiller`` as usual (``distill.*``);
* validation / test / ``predict`` run the student only (teacher metrics: use
  ``val_cfg=dict(type='mmrazor.SingleTeacherDistillValLoop')``).
"""
import copy
import warnings
from typing import Dict, List, Optional

import torch
from mmrazor.models.algorithms import SingleTeacherDistill
from mmrazor.models.utils import add_prefix

from mmdet_ksdetr.models.detr_internals import (DETRInternals, get_detr_internals,
                                                record_detr_internals)
from mmdet_ksdetr.utils import load_checkpoint_safely

__all__ = ['DETRDistillBase', 'TeacherCheckpointError', 'load_teacher_checkpoint']


class TeacherCheckpointError(RuntimeError):
    """The teacher checkpoint does not fit the teacher config; the message lists the keys."""


def _list_keys(keys, limit=15):
    keys = sorted(keys)
    shown = ', '.join(keys[:limit])
    return shown + (f', ... ({len(keys) - limit} more)' if len(keys) > limit else '')


def _state_dict_of(ckpt, path):
    if isinstance(ckpt, dict) and isinstance(ckpt.get('state_dict'), dict):
        state = ckpt['state_dict']
    elif isinstance(ckpt, dict):
        state = ckpt
    else:
        raise TeacherCheckpointError(f'teacher checkpoint "{path}" holds a '
                                     f'{type(ckpt).__name__}, not a state dict')
    state = {k: v for k, v in state.items() if torch.is_tensor(v)}
    if state and all(k.startswith('module.') for k in state):
        state = {k[len('module.'):]: v for k, v in state.items()}
    if any(k.startswith('architecture.') for k in state):
        # a distillation checkpoint: its student becomes the teacher
        state = {k[len('architecture.'):]: v for k, v in state.items()
                 if k.startswith('architecture.')}
    return state


def load_teacher_checkpoint(teacher: torch.nn.Module, path: str, strict: bool = True) -> None:
    """Load ``path`` (a file or an http(s) URL) into ``teacher`` with ``weights_only=True``.

    ``strict=True``: any missing, unexpected or mis-shaped key raises
    :class:`TeacherCheckpointError` with the list. ``strict=False``: unexpected keys and missing
    buffers only warn, but a missing or mis-shaped *parameter* still raises (the teacher would
    be partly random).
    """
    if str(path).startswith(('http://', 'https://')):
        # cached in torch.hub's checkpoint folder; still weights_only
        ckpt = torch.hub.load_state_dict_from_url(path, map_location='cpu', weights_only=True)
    else:
        ckpt = load_checkpoint_safely(path)
    state = _state_dict_of(ckpt, path)
    own = teacher.state_dict()
    params = {name for name, _ in teacher.named_parameters()}
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mis_shaped = [f'{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}' for k in own
                  if k in state and state[k].shape != own[k].shape]
    fatal = missing or unexpected or mis_shaped if strict else \
        [k for k in missing if k in params] or mis_shaped
    report = []
    if missing:
        report.append(f'{len(missing)} missing keys (in the teacher, not in the checkpoint): '
                      f'{_list_keys(missing)}')
    if unexpected:
        report.append(f'{len(unexpected)} unexpected keys (in the checkpoint, not in the '
                      f'teacher): {_list_keys(unexpected)}')
    if mis_shaped:
        report.append(f'{len(mis_shaped)} keys with another shape (checkpoint vs teacher): '
                      f'{_list_keys(mis_shaped)}')
    if fatal:
        raise TeacherCheckpointError(
            f'teacher checkpoint "{path}" does not match the teacher model '
            f'({type(teacher).__name__}); the teacher would be left (partly) random.\n  ' +
            '\n  '.join(report) +
            '\nCheck that `teacher` names the config the checkpoint was trained with and that '
            '`teacher_ckpt` is that run\'s checkpoint (a distillation checkpoint is accepted: '
            'its architecture.* student is used).')
    if report:
        warnings.warn(f'teacher checkpoint "{path}": ' + '; '.join(report))
    teacher.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)


def _check_detr(model, role):
    for name in ('extract_feat', 'forward_transformer', 'forward_decoder', 'bbox_head'):
        if not hasattr(model, name):
            raise TypeError(f'the {role} ({type(model).__name__}) is not a DETR-family '
                            f'detector (no {name}); DETR distillation needs mmdet '
                            f'DetectionTransformer subclasses for student and teacher')


class DETRDistillBase(SingleTeacherDistill):
    """Single-teacher distillation between two DETR-family detectors, with a frozen
    ``eval()`` teacher, one no-grad teacher forward per step and typed internals for both
    models. Subclasses implement :meth:`compute_distill_losses`.

    Args:
        architecture: the student config (an mmdet DETR-family detector; inline dicts need
            ``_scope_='mmdet'`` inside ``_scope_='mmrazor'``).
        teacher: the teacher config (same rules).
        teacher_ckpt: checkpoint of the trained teacher (strongly recommended; without it the
            teacher is random and a warning is issued).
        teacher_strict: see :func:`load_teacher_checkpoint`.
        distiller: a ``ConfigurableDistiller`` config holding the distillation loss modules
            (``distill_losses``) and optional recorder-based losses.
        keep_denoising: keep DINO denoising queries in the student internals (default: off).
        calculate_student_loss: add the student's GT losses (``student.*``).
        **kwargs: other ``SingleTeacherDistill`` / ``BaseAlgorithm`` arguments.

    Loss keys: ``student.*`` (GT losses), ``distill.*`` (distillation losses).
    """

    def __init__(self,
                 architecture,
                 teacher,
                 teacher_ckpt: Optional[str] = None,
                 teacher_strict: bool = True,
                 distiller: Optional[dict] = None,
                 keep_denoising: bool = False,
                 teacher_trainable: bool = False,
                 **kwargs):
        if teacher_trainable:
            raise ValueError(f'{type(self).__name__} keeps the teacher frozen: '
                             f'teacher_trainable=True is not supported')
        # mmdet's DeformableDETR writes into its bbox_head config while building: build from
        # copies so a config (or a dict shared by student and teacher) can be built again
        architecture = copy.deepcopy(architecture) if isinstance(architecture, dict) \
            else architecture
        teacher = copy.deepcopy(teacher) if isinstance(teacher, dict) else teacher
        super().__init__(architecture=architecture, teacher=teacher, teacher_ckpt=None,
                         teacher_trainable=False,
                         distiller=distiller or dict(type='ConfigurableDistiller'), **kwargs)
        _check_detr(self.student, 'student (architecture)')
        _check_detr(self.teacher, 'teacher')
        self.keep_denoising = keep_denoising
        if teacher_ckpt:
            load_teacher_checkpoint(self.teacher, teacher_ckpt, strict=teacher_strict)
            self.teacher._is_init = True  # runner.init_weights() must not overwrite it
        else:
            warnings.warn(f'{type(self).__name__}: no teacher_ckpt given, the teacher is '
                          f'randomly initialised (only useful for tests)')
        self.teacher.requires_grad_(False)
        self.teacher.eval()

    # ---------------------------------------------------------------- teacher state
    def train(self, mode: bool = True):
        """Train the student; the whole teacher always stays in ``eval()``."""
        super().train(mode)
        self.teacher.eval()
        return self

    # ---------------------------------------------------------------- forwards
    def teacher_forward(self, batch_inputs, batch_data_samples) -> DETRInternals:
        """One no-grad ``eval()`` teacher forward (no loss); detached internals."""
        self.distiller.set_deliveries_override(False)
        with torch.no_grad(), self.distiller.teacher_recorders, self.distiller.deliveries:
            internals = get_detr_internals(self.teacher, batch_inputs, batch_data_samples)
        return internals.detach()

    def student_forward(self, batch_inputs, batch_data_samples,
                        extra_groups: Optional[Dict] = None, merge_groups: bool = True):
        """The student's forward: ``(gt_losses, internals)`` from one pass; ``gt_losses`` is
        empty when ``calculate_student_loss`` is False. ``extra_groups`` / ``merge_groups``:
        query groups decoded along with the student's queries (see
        :func:`~mmdet_ksdetr.models.detr_internals.record_detr_internals`)."""
        self.distiller.set_deliveries_override(True)
        with self.distiller.student_recorders, self.distiller.deliveries:
            if self.calculate_student_loss:
                with record_detr_internals(self.student, self.keep_denoising, extra_groups,
                                           merge_groups) as rec:
                    losses = self.student.loss(batch_inputs, batch_data_samples)
                return losses, rec.internals
            internals = get_detr_internals(self.student, batch_inputs, batch_data_samples,
                                           self.keep_denoising, extra_groups, merge_groups)
            return {}, internals

    def student_group_options(self, teacher_internals: DETRInternals) -> Dict:
        """``extra_groups`` / ``merge_groups`` for :meth:`student_forward` in a training step
        (subclasses that decode extra query groups with the student override this)."""
        return {}

    def predict(self, batch_inputs, data_samples: Optional[List] = None, rescale: bool = True):
        """The student's ``predict`` (mmdet-style alias of ``forward(mode='predict')``)."""
        return self.student.predict(batch_inputs, data_samples, rescale=rescale)

    def loss(self, batch_inputs, data_samples: Optional[List] = None) -> Dict:
        teacher_internals = self.teacher_forward(batch_inputs, data_samples)
        options = {} if self.distillation_stopped else \
            self.student_group_options(teacher_internals)
        student_losses, student_internals = self.student_forward(batch_inputs, data_samples,
                                                                 **options)
        losses = add_prefix(student_losses, 'student')
        if not self.distillation_stopped:
            distill = self.compute_distill_losses(student_internals, teacher_internals,
                                                  data_samples)
            distill.update(self.distiller.compute_distill_losses())
            losses.update(add_prefix(distill, 'distill'))
        return losses

    def compute_distill_losses(self, student_internals: DETRInternals,
                               teacher_internals: DETRInternals,
                               batch_data_samples: List) -> Dict:
        """Distillation losses (names containing ``loss``) from the two internals; the
        teacher's are detached, the student's carry gradients."""
        raise NotImplementedError
