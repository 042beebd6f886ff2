"""KS-DAB-DETR: DAB-DETR trained with KS-DETR triple attention in its last encoder layer."""
from mmdet.models.detectors import DABDETR
from mmdet.registry import MODELS

from mmdet_ksdetr.models.ks_detr.ks_detr_mixin import KSDetectorMixin


@MODELS.register_module()
class KSDABDETR(KSDetectorMixin, DABDETR):
    """KS-DAB-DETR (KS-DETR, arXiv 2302.11208, on DAB-DETR).

    The last encoder layer also computes GT-aware teacher streams that share the attention map
    A or the values V with the student (``A^t V``, ``A V^t``); in ``loss()`` each teacher memory
    runs through the same decoder (iterative anchor refinement of its own, same initial
    anchors) and the same head, so better teachers train the student's W_q, W_k, W_v. The DAB
    encoder's ``query_scale`` is computed from the unmodified input and reused by the teachers.
    ``predict()`` is DAB-DETR's.

    Shapes: as :class:`~mmdet.models.detectors.DABDETR`; in ``loss()`` the head also gets
    each teacher's last-layer hidden states (1, B, Q, C) and references (1, B, Q, 4).
    """
    ks_head_hint = "dict(type='KSDABDETRHead', ...)"
