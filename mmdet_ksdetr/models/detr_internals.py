"""One typed view of a DETR's internals, for distillation (DESIGN rule 5).

Distillers need, per decoder layer, the classification logits, the boxes, the hidden states,
the decoder's queries and reference points, plus the neck features and the image shapes, for
the student *and* the teacher. :func:`get_detr_internals` returns all of them as one
:class:`DETRInternals` for any detector built on mmdet's
:class:`~mmdet.models.detectors.DetectionTransformer` (DETR, Deformable DETR incl. box refine /
two-stage, Conditional DETR, DAB-DETR, DINO, and subclasses such as the KS-/DAC- detectors of
this library).

How it works: it relies only on the contract of the four DETR hooks, never on class names.
While the detector runs its own ``extract_feat`` -> ``forward_transformer`` (or its whole
``loss``, see :func:`record_detr_internals`), the first call of ``extract_feat``,
``forward_transformer`` and ``forward_decoder`` on *that instance* is recorded (a temporary
instance attribute; the class is never patched and the computation is unchanged). The per-layer
logits and boxes are ``bbox_head.forward(**head_inputs)`` on the recorded head inputs, i.e.
exactly what ``bbox_head.loss`` / ``bbox_head.predict`` compute from them (taken from the
detector's own head call when there was one with exactly these inputs, so nothing runs twice). A subclass that
overrides ``forward_transformer`` or a hook works unchanged as long as it calls
``self.forward_decoder(**kwargs)`` for its main decoder pass first and returns the main
stream's ``hidden_states`` / ``references`` in the head-input dict (the mmdet contract).

DINO denoising queries (training only): ``pre_decoder`` puts ``num_denoising_queries`` CDN
queries *in front of* the matching queries; their number changes per batch (it depends on the
GT count) and they are random noise drawn independently by every model, so they cannot be
distilled query-to-query. By default (``keep_denoising=False``) every per-query tensor of the
structure is sliced to the matching queries only, and ``num_denoising_queries`` is ``0``. With
``keep_denoising=True`` the denoising entries are kept first along the query axis and
``num_denoising_queries`` says how many there are; :meth:`DETRInternals.without_denoising`
slices them off later. ``dn_meta`` keeps mmdet's dict either way. A teacher in ``eval()`` never
has denoising queries.
"""
import inspect
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import Tensor

from .merged_decoding import decode_merged, mergeable_inputs, supports_merged_decoding

__all__ = ['DETRInternals', 'get_detr_internals', 'record_detr_internals']

_HOOKS = ('extract_feat', 'forward_transformer', 'forward_decoder')


@dataclass
class DETRInternals:
    """What a DETR-family detector computed for one batch (student and teacher alike).

    Shapes: L decoder layers, B images, N queries (matching queries only unless
    ``num_denoising_queries > 0``), C = ``cls_out_channels`` of the head (``num_classes`` for
    sigmoid heads, ``num_classes + 1`` for DETR's softmax head), D embedding dims.

    Attributes:
        cls_logits: (L, B, N, C) raw classification logits of every decoder layer.
        bbox_preds: (L, B, N, 4) boxes of every decoder layer, normalised ``(cx, cy, w, h)`` in
            [0, 1] relative to each image's ``img_shape`` (mmdet's DETR convention, not the
            padded shape). ``bbox_preds[-1]`` / ``cls_logits[-1]`` are exactly what
            ``bbox_head.predict_by_feat`` turns into detections.
        hidden_states: (L, B, N, D) decoder output of every layer (before the head).
        queries: (B, N, D) content queries given to ``forward_decoder`` (``query``).
        query_pos: positional queries given to ``forward_decoder``, ``None`` if the detector
            passes none (DINO). (B, N, D) for DETR / Conditional / Deformable DETR; (B, N, 4)
            un-sigmoided anchors for DAB-DETR.
        reference_points: (L, B, N, 2 or 4) the sigmoid-space reference each decoder layer
            received (2 = points, 4 = boxes), ``None`` for plain DETR.
        neck_feats: the ``extract_feat`` outputs, each (B, D_m, H_m, W_m).
        memory: (B, S, D) encoder output; ``memory_mask``: (B, S) bool, True at padding, or
            ``None`` when no image is padded.
        img_shapes: per image ``(h, w)`` of the resized, unpadded image; ``batch_input_shape``:
            the padded ``(h, w)``.
        use_sigmoid: whether the head classifies with sigmoids (focal loss) or a softmax.
        num_denoising_queries: number of leading DINO denoising queries kept along N (0 unless
            ``keep_denoising=True`` in training); ``dn_meta``: mmdet's DINO dict or ``None``.
        decoder_inputs: the full keyword arguments of the (first) ``forward_decoder`` call,
            denoising parts included; re-run the decoder with other queries from these (e.g.
            DETRDistill's teacher group).
        head_inputs: the full ``forward_transformer`` output, ready for ``bbox_head.loss``.
        group_decoder_outputs: by name, the ``forward_decoder`` outputs of the extra query
            groups decoded along with the main queries (``extra_groups`` of
            :func:`record_detr_internals`, e.g. DETRDistill's teacher group); empty otherwise.
    """
    cls_logits: Tensor
    bbox_preds: Tensor
    hidden_states: Tensor
    queries: Optional[Tensor]
    query_pos: Optional[Tensor]
    reference_points: Optional[Tensor]
    neck_feats: Tuple[Tensor, ...]
    memory: Optional[Tensor]
    memory_mask: Optional[Tensor]
    img_shapes: Tuple[Tuple[int, int], ...]
    batch_input_shape: Tuple[int, int]
    use_sigmoid: bool = True
    num_denoising_queries: int = 0
    dn_meta: Optional[dict] = None
    decoder_inputs: Dict = field(default_factory=dict, repr=False)
    head_inputs: Dict = field(default_factory=dict, repr=False)
    group_decoder_outputs: Dict[str, Dict] = field(default_factory=dict, repr=False)

    # per-query tensors and the axis that holds the queries (sliced by without_denoising)
    _QUERY_AXES = dict(cls_logits=2, bbox_preds=2, hidden_states=2, queries=1, query_pos=1,
                       reference_points=2)

    @property
    def num_layers(self) -> int:
        return self.cls_logits.shape[0]

    @property
    def batch_size(self) -> int:
        return self.cls_logits.shape[1]

    @property
    def num_queries(self) -> int:
        """Queries along N, denoising ones included if kept."""
        return self.cls_logits.shape[2]

    @property
    def num_classes(self) -> int:
        """Foreground classes (C for sigmoid heads, C - 1 for softmax heads)."""
        return self.cls_logits.shape[-1] - (0 if self.use_sigmoid else 1)

    def scores(self) -> Tensor:
        """(L, B, N, num_classes) class probabilities (sigmoid, or softmax without the
        background column)."""
        if self.use_sigmoid:
            return self.cls_logits.sigmoid()
        return self.cls_logits.softmax(-1)[..., :-1]

    def img_size_factors(self) -> Tensor:
        """(B, 4) ``[w, h, w, h]`` of each ``img_shape``: ``bbox_preds`` times this, after
        cxcywh -> xyxy, gives pixel boxes in the network-input frame."""
        return self.cls_logits.new_tensor([[w, h, w, h] for h, w in self.img_shapes])

    def bboxes_xyxy(self, clamp: bool = False) -> Tensor:
        """(L, B, N, 4) pixel ``(x1, y1, x2, y2)`` boxes in the network-input frame, optionally
        clamped to each image (as ``predict_by_feat`` does)."""
        cx, cy, w, h = self.bbox_preds.unbind(-1)
        boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)
        boxes = boxes * self.img_size_factors()[None, :, None, :]
        if clamp:
            boxes = torch.minimum(boxes.clamp(min=0), self.img_size_factors()[None, :, None, :])
        return boxes

    def without_denoising(self) -> 'DETRInternals':
        """A copy whose per-query tensors hold the matching queries only."""
        n = self.num_denoising_queries
        if n == 0:
            return self
        sliced = {}
        for name, axis in self._QUERY_AXES.items():
            value = getattr(self, name)
            if value is not None:
                sliced[name] = value.narrow(axis, n, value.shape[axis] - n)
        return replace(self, num_denoising_queries=0, **sliced)

    def detach(self) -> 'DETRInternals':
        """A copy with every tensor detached (teacher targets)."""

        def det(v):
            if torch.is_tensor(v):
                return v.detach()
            if isinstance(v, (list, tuple)):
                return type(v)(det(x) for x in v)
            if isinstance(v, dict):
                return {k: det(x) for k, x in v.items()}
            return v

        return replace(self, **{f.name: det(getattr(self, f.name)) for f in fields(self)})


def _check_detector(detector):
    missing = [name for name in _HOOKS + ('bbox_head', ) if not hasattr(detector, name)]
    if missing:
        raise TypeError(
            f'{type(detector).__name__} is not a DETR-family detector: it lacks '
            f'{", ".join(missing)}. DETR internals need an mmdet DetectionTransformer '
            f'(DETR, DeformableDETR, ConditionalDETR, DABDETR, DINO or a subclass); unwrap DDP '
            f'models (model.module) first.')


def _layer_references(references, num_layers):
    """Per-layer input references as one (L, B, N, k) tensor, whatever the detector returns:
    a list of L + 1 (Deformable/DINO: initial + after each layer), an (L, B, N, k) tensor
    (DAB-DETR) or one (B, N, k) tensor shared by all layers (Conditional DETR)."""
    if references is None:
        return None
    if isinstance(references, (list, tuple)):
        return torch.stack(list(references[:num_layers]))
    if references.dim() == 3:
        return references.unsqueeze(0).expand(num_layers, -1, -1, -1)
    return references[:num_layers]


class DETRInternalsRecorder:
    """Filled while a detector runs inside :func:`record_detr_internals`; read
    :attr:`internals` after the ``with`` block."""

    def __init__(self, detector, keep_denoising=False, extra_groups=None, merge_groups=True):
        self.detector = detector
        self.keep_denoising = keep_denoising
        self.extra_groups = dict(extra_groups or {})
        self.merge_groups = merge_groups
        self.group_outputs = {}
        self.merged = False  # whether the extra groups shared the main decoder pass
        self.records = {}
        self.head_call = None  # (bound arguments, output) of the first bbox_head call
        self.head_signature = inspect.signature(detector.bbox_head.forward)
        self._internals = None

    def _wrap(self, name, method):

        def wrapper(*args, **kwargs):
            if name == 'forward_decoder' and name not in self.records and self.extra_groups:
                out = self._decode_with_groups(method, args, kwargs)
            else:
                out = method(*args, **kwargs)
            if name not in self.records:
                self.records[name] = (args, kwargs, out)
            return out

        return wrapper

    def _decode_with_groups(self, forward_decoder, args, kwargs):
        """The main decoder pass plus the extra groups: one merged pass when the detector
        and the inputs allow it (:mod:`~mmdet_ksdetr.models.merged_decoding`), else one
        ``forward_decoder`` call per group after the main one."""
        if args:
            raise RuntimeError(f'{type(self.detector).__name__}.forward_decoder was called with '
                               f'positional arguments; DETR hooks pass keyword arguments')
        names = list(self.extra_groups)
        groups = [self.extra_groups[name](kwargs) for name in names]
        if self.merge_groups and supports_merged_decoding(self.detector) and all(
                mergeable_inputs(kwargs, g) for g in groups):
            out, group_outs = decode_merged(self.detector, forward_decoder, kwargs, groups)
            self.merged = True
        else:
            out = forward_decoder(**kwargs)
            group_outs = [forward_decoder(**g) for g in groups]
        self.group_outputs = dict(zip(names, group_outs))
        return out

    def _wrap_head(self, method):
        signature = self.head_signature = inspect.signature(method)

        def wrapper(*args, **kwargs):
            out = method(*args, **kwargs)
            if self.head_call is None:
                try:
                    bound = signature.bind(*args, **kwargs).arguments
                except TypeError:
                    bound = None
                self.head_call = (bound, out)
            return out

        return wrapper

    def _recorded_head_outputs(self, head_kwargs):
        """The outputs of the detector's own ``bbox_head`` call when it got exactly (the same
        tensor objects as) ``head_kwargs``, e.g. inside ``bbox_head.loss``; else ``None``."""
        if self.head_call is None or self.head_call[0] is None:
            return None
        bound, out = self.head_call
        if set(bound) != set(head_kwargs) or any(bound[k] is not v
                                                 for k, v in head_kwargs.items()):
            return None
        return out

    @property
    def internals(self) -> DETRInternals:
        if self._internals is None:
            self._internals = self._build()
        return self._internals

    def _build(self) -> DETRInternals:
        det = self.detector
        for name in ('forward_transformer', 'forward_decoder'):
            if name not in self.records:
                raise RuntimeError(
                    f'{type(det).__name__}.{name} was not called inside '
                    f'record_detr_internals(); run the detector (loss / predict / '
                    f'forward_transformer) inside the with-block')
        ft_args, ft_kwargs, head_inputs = self.records['forward_transformer']
        img_feats = ft_args[0] if ft_args else ft_kwargs['img_feats']
        if 'extract_feat' in self.records:
            img_feats = self.records['extract_feat'][2]
        samples = ft_args[1] if len(ft_args) > 1 else ft_kwargs.get('batch_data_samples')
        if samples is None:
            raise ValueError('DETR internals need batch_data_samples (for img_shape)')
        dec_args, dec_inputs, _ = self.records['forward_decoder']
        if dec_args:
            raise RuntimeError(f'{type(det).__name__}.forward_decoder was called with '
                               f'positional arguments; DETR hooks pass keyword arguments')

        head = det.bbox_head
        params = self.head_signature.parameters
        head_kwargs = {k: v for k, v in head_inputs.items() if k in params}
        # reuse the head outputs the detector computed itself (its loss), so the distillation
        # losses back-propagate through the same head pass as the GT losses; else run the head
        outs = self._recorded_head_outputs(head_kwargs)
        if outs is None:
            outs = head(**head_kwargs)
        cls_logits, bbox_preds = outs[0], outs[1]
        hidden_states = head_inputs['hidden_states']
        num_layers = hidden_states.shape[0]
        loss_cls = getattr(head, 'loss_cls', None)
        dn_meta = head_inputs.get('dn_meta')
        num_dn = int(dn_meta['num_denoising_queries']) if dn_meta else 0

        internals = DETRInternals(
            cls_logits=cls_logits,
            bbox_preds=bbox_preds,
            hidden_states=hidden_states,
            queries=dec_inputs.get('query'),
            query_pos=dec_inputs.get('query_pos'),
            reference_points=_layer_references(head_inputs.get('references'), num_layers),
            neck_feats=tuple(img_feats),
            memory=dec_inputs.get('memory'),
            memory_mask=dec_inputs.get('memory_mask'),
            img_shapes=tuple(tuple(int(x) for x in s.img_shape[:2]) for s in samples),
            batch_input_shape=tuple(int(x) for x in samples[0].batch_input_shape),
            use_sigmoid=bool(getattr(loss_cls, 'use_sigmoid', True)),
            num_denoising_queries=num_dn,
            dn_meta=dn_meta,
            decoder_inputs=dict(dec_inputs),
            head_inputs=head_inputs,
            group_decoder_outputs=dict(self.group_outputs))
        return internals if self.keep_denoising else internals.without_denoising()


@contextmanager
def record_detr_internals(detector, keep_denoising: bool = False,
                          extra_groups: Optional[Dict[str, Callable[[Dict], Dict]]] = None,
                          merge_groups: bool = True):
    """Record the internals of whatever the detector runs inside the block, e.g. its own
    ``loss`` (so a student's GT losses and its internals come from one forward pass)::

        with record_detr_internals(student) as rec:
            losses = student.loss(batch_inputs, batch_data_samples)
        internals = rec.internals          # DETRInternals, with gradients

    Only the first ``extract_feat`` / ``forward_transformer`` / ``forward_decoder`` /
    ``bbox_head`` call is recorded; when the detector's own head call got exactly the recorded
    head inputs, its outputs are reused instead of running the head again. Nothing is patched
    on the class; the instances are restored on exit.

    ``extra_groups`` (name -> function of the main ``forward_decoder`` keyword arguments that
    returns a group's keyword arguments) are decoded along with the first ``forward_decoder``
    call; their outputs land in ``internals.group_decoder_outputs[name]``. With
    ``merge_groups`` they share the main pass (block-diagonal self-attention, see
    :mod:`~mmdet_ksdetr.models.merged_decoding`) where the detector allows it
    (``rec.merged`` tells), otherwise each group is a separate ``forward_decoder`` call.
    """
    _check_detector(detector)
    rec = DETRInternalsRecorder(detector, keep_denoising, extra_groups, merge_groups)
    head = detector.bbox_head
    wrapped = [(detector, name, rec._wrap(name, getattr(detector, name))) for name in _HOOKS]
    wrapped.append((head, 'forward', rec._wrap_head(head.forward)))
    saved = [(obj, name, vars(obj).get(name)) for obj, name, _ in wrapped]
    for obj, name, wrapper in wrapped:
        object.__setattr__(obj, name, wrapper)
    try:
        yield rec
    finally:
        for obj, name, before in saved:
            if before is not None:
                object.__setattr__(obj, name, before)
            else:
                object.__delattr__(obj, name)


def get_detr_internals(detector, batch_inputs: Tensor, batch_data_samples: List,
                       keep_denoising: bool = False,
                       extra_groups: Optional[Dict[str, Callable[[Dict], Dict]]] = None,
                       merge_groups: bool = True) -> DETRInternals:
    """Run ``extract_feat`` and ``forward_transformer`` of a DETR-family detector and return
    its :class:`DETRInternals` (no loss, no post-processing).

    Args:
        detector: an mmdet ``DetectionTransformer`` (or subclass), not a DDP wrapper.
        batch_inputs: (B, 3, H, W) preprocessed images (``data_preprocessor`` output).
        batch_data_samples: their ``DetDataSample`` list (``img_shape`` is read; DINO in
            training also reads the GT for its denoising queries).
        keep_denoising: keep DINO's training-time denoising queries (see the module doc).
        extra_groups, merge_groups: extra query groups, see :func:`record_detr_internals`.

    The detector's current mode is used as is: call ``detector.eval()`` first for a
    deterministic teacher (dropout off, no denoising queries), and wrap the call in
    ``torch.no_grad()`` when no gradient is needed.
    """
    with record_detr_internals(detector, keep_denoising, extra_groups, merge_groups) as rec:
        img_feats = detector.extract_feat(batch_inputs)
        detector.forward_transformer(img_feats, batch_data_samples)
    return rec.internals
