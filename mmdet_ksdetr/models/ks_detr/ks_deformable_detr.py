"""KS-Deformable-DETR: Deformable DETR trained with KS-DETR deformable triple attention."""
from mmdet.models.detectors import DeformableDETR
from mmdet.registry import MODELS

from mmdet_ksdetr.models.ks_detr.ks_detr_mixin import KSDeformableDetectorMixin


@MODELS.register_module()
class KSDeformableDETR(KSDeformableDetectorMixin, DeformableDETR):
    """KS-Deformable-DETR (KS-DETR, arXiv 2302.11208, on Deformable DETR).

    The last encoder layer uses deformable triple attention ("v0"): the teachers reuse the
    student's sampling locations and own only their attention weights ``A^t`` and value
    projection ``V^t``; the streams ``(V, A)``, ``(V, A^t)``, ``(V^t, A)`` share the output
    projection, norms and FFN. In ``loss()`` the teacher memories run through the same decoder
    and head (own box refinement per pass when ``with_box_refine``, same initial references).
    Two-stage is not supported. ``predict()`` is Deformable DETR's.

    Shapes: as :class:`~mmdet.models.detectors.DeformableDETR`; in ``loss()`` the head also gets
    each teacher's last-layer hidden states (1, B, Q, C) and a one-entry reference list.
    """
    ks_head_hint = "dict(type='KSDeformableDETRHead', ...)"
