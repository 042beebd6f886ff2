"""KS-DN-DETR: DN-DETR trained with KS-DETR triple attention in its last encoder layer."""
from mmdet.registry import MODELS

from mmdet_ksdetr.models.dn_detr.dn_detr import DNDETR
from mmdet_ksdetr.models.ks_detr.ks_detr_mixin import KSDetectorMixin


@MODELS.register_module()
class KSDNDETR(KSDetectorMixin, DNDETR):
    """KS-DN-DETR (KS-DETR, arXiv 2302.11208, on DN-DETR).

    Triple attention in the last encoder layer as in :class:`KSDABDETR`; in ``loss()`` the
    teacher decoder passes get the same noised DN queries and DN attention mask as the student,
    and every teacher group gets the matching and the DN losses. ``predict()`` is DN-DETR's.

    Shapes: as :class:`DNDETR`; in ``loss()`` the head also gets each
    teacher's last layer (``ks_teacher_hidden_states`` / ``ks_teacher_references``).
    """
    ks_head_hint = "dict(type='KSDNDETRHead', ...)"
