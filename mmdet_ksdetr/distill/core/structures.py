"""Typed results of a DETR forward for distillation: one structure with every
decoder layer's outputs, filled by module hooks or explicit methods.

Shapes: L decoder layers, B images, N queries, C = ``cls_out_channels`` of the head
(``num_classes`` for sigmoid heads, ``num_classes + 1`` for DETR's softmax head), D embedding
dims.
"""
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor

__all__ = ['DETRInternals', 'DecodedGroup', 'DecoderAttention']


def _detach(value):
    """``value`` with every tensor inside (lists, tuples, dicts, dataclasses) detached."""
    if torch.is_tensor(value):
        return value.detach()
    if isinstance(value, (list, tuple)):
        return type(value)(_detach(x) for x in value)
    if isinstance(value, dict):
        return {k: _detach(x) for k, x in value.items()}
    if is_dataclass(value) and not isinstance(value, type):
        return replace(value, **{f.name: _detach(getattr(value, f.name)) for f in fields(value)})
    return value


@dataclass
class DecoderAttention:
    """Attention maps of one decoder pass; ``None`` where not recorded or not present.

    Attributes:
        self_attn: (L, B, N, N) self-attention weights averaged over heads.
        cross_weights: (L, B, N, heads, levels, points) softmaxed weights of a deformable
            cross-attention.
        cross_locations: (L, B, N, heads, levels, points, 2) its normalised (x, y) sampling
            locations.
        spatial_shapes: (levels, 2) ``(h, w)`` of each feature level.
    """
    self_attn: Optional[Tensor] = None
    cross_weights: Optional[Tensor] = None
    cross_locations: Optional[Tensor] = None
    spatial_shapes: Optional[Tensor] = None


@dataclass
class DecodedGroup:
    """A query group decoded by a detector's decoder and read out by its head.

    Attributes:
        group: the :class:`~mmdet_ksdetr.distill.core.query_group.QueryGroup` decoded
            (its queries, so another detector can decode the very same ones).
        cls_logits: (L, B, N, C) raw classification logits of every decoder layer.
        bbox_preds: (L, B, N, 4) normalised ``(cx, cy, w, h)`` boxes of every layer.
        hidden_states: (L, B, N, D) decoder output of every layer.
        attention: the group's own decoder pass attention when it was recorded (separate
            pass), else ``None``.
    """
    group: object
    cls_logits: Tensor
    bbox_preds: Tensor
    hidden_states: Tensor
    attention: Optional[DecoderAttention] = None


@dataclass
class DETRInternals:
    """What a DETR-family detector computed for one batch (student and teacher alike).

    N counts the matching queries only unless ``num_denoising_queries > 0``.

    Attributes:
        cls_logits: (L, B, N, C) raw classification logits of every decoder layer.
        bbox_preds: (L, B, N, 4) boxes of every layer, normalised ``(cx, cy, w, h)`` relative to
            each image's ``img_shape`` (not the padded shape). ``bbox_preds[-1]`` /
            ``cls_logits[-1]`` are what ``bbox_head.predict_by_feat`` turns into detections.
        hidden_states: (L, B, N, D) decoder output of every layer (before the head).
        queries: (B, N, D) content queries given to ``forward_decoder`` (``query``).
        query_pos: positional queries given to ``forward_decoder``: (B, N, D) for DETR /
            Conditional / Deformable DETR, (B, N, 4) un-sigmoided anchors for DAB-DETR, ``None``
            for DINO.
        reference_points: (L, B, N, 2 or 4) sigmoid-space reference each decoder layer
            received, ``None`` for plain DETR.
        neck_feats: the ``extract_feat`` outputs, each (B, D_m, H_m, W_m).
        memory: (B, S, D) encoder output; ``memory_mask``: (B, S) bool, True at padding, or
            ``None``.
        img_shapes: per image ``(h, w)`` of the resized, unpadded image; ``batch_input_shape``:
            the padded ``(h, w)``.
        use_sigmoid: whether the head classifies with sigmoids (focal loss) or a softmax.
        num_denoising_queries: leading DINO denoising queries kept along N (0 unless
            ``keep_denoising=True`` in training); ``dn_meta``: mmdet's DINO dict or ``None``.
        decoder_inputs: the keyword arguments of the main ``forward_decoder`` call, denoising
            parts included (per-query tensors (B, N_all, k)); query groups are decoded from
            these with other queries swapped in.
        head_inputs: the ``forward_transformer`` output (what ``bbox_head.loss`` takes).
        groups: name -> :class:`DecodedGroup`, the extra query groups decoded in the same step.
        attention: the main decoder pass's :class:`DecoderAttention` when recorded (its N
            includes denoising queries: ``dn_meta['num_denoising_queries']`` lead).
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
    groups: Dict[str, DecodedGroup] = field(default_factory=dict, repr=False)
    attention: Optional[DecoderAttention] = field(default=None, repr=False)

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

    @property
    def embed_dims(self) -> int:
        """D, the width of the decoder's hidden states."""
        return self.hidden_states.shape[-1]

    def scores(self) -> Tensor:
        """(L, B, N, num_classes) class probabilities (sigmoid, or softmax without the
        background column)."""
        if self.use_sigmoid:
            return self.cls_logits.sigmoid()
        return self.cls_logits.softmax(-1)[..., :-1]

    def img_size_factors(self) -> Tensor:
        """(B, 4) float32 ``[w, h, w, h]`` of each ``img_shape``, on the logits' device
        (float32 whatever the logits' dtype: half rounds sizes above 2048 pixels)."""
        return self.cls_logits.new_tensor([[w, h, w, h] for h, w in self.img_shapes],
                                          dtype=torch.float32)

    def bboxes_xyxy(self, clamp: bool = False) -> Tensor:
        """(L, B, N, 4) pixel ``(x1, y1, x2, y2)`` boxes in the network-input frame, optionally
        clamped to each image (as ``predict_by_feat`` does)."""
        cx, cy, w, h = self.bbox_preds.unbind(-1)
        boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)
        factors = self.img_size_factors()[None, :, None, :]
        boxes = boxes * factors
        if clamp:
            boxes = torch.minimum(boxes.clamp(min=0), factors)
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
        return _detach(self)
