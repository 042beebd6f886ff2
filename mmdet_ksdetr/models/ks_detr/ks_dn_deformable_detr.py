"""KS-DN-Deformable-DETR: DN-Deformable-DETR trained with KS-DETR deformable triple
attention."""
from mmdet.registry import MODELS

from mmdet_ksdetr.models.dn_detr.dn_deformable_detr import DNDeformableDETR
from mmdet_ksdetr.models.ks_detr.ks_detr_mixin import KSDeformableDetectorMixin


@MODELS.register_module()
class KSDNDeformableDETR(KSDeformableDetectorMixin, DNDeformableDETR):
    """KS-DN-Deformable-DETR (KS-DETR, arXiv 2302.11208, on DN-Deformable-DETR).

    Deformable triple attention (v0) in the last encoder layer; in ``loss()`` each teacher
    memory runs through the same decoder with the same anchors, DN queries and DN mask, and
    refines its own boxes; teacher groups use the last layer's head branches and get matching
    and DN losses. ``predict()`` is DN-Deformable-DETR's.
    """
    ks_head_hint = "dict(type='KSDNDeformableDETRHead', ...)"
