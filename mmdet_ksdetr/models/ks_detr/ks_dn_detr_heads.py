"""Heads of KS-DN-DETR and KS-DN-Deformable-DETR: the DN heads plus KS teacher groups.

Every teacher group (a teacher pass's last decoder layer, which carries the same denoising
queries as the student) gets the matching losses *and* the DN losses, as in the release."""
from mmdet.models.dense_heads import DINOHead
from mmdet.registry import MODELS

from mmdet_ksdetr.models.dn_detr.dn_detr_head import DNDETRHead
from mmdet_ksdetr.models.ks_detr.ks_detr_heads import KSDeformableDETRHead, KSHeadMixin

__all__ = ['KSDNDETRHead', 'KSDNDeformableDETRHead']


@MODELS.register_module()
class KSDNDETRHead(KSHeadMixin, DNDETRHead):
    """DN-DETR head taking KS teacher groups in loss: student hidden states / references
    (L, B, Q_dn + Q, C) / (L, B, Q_dn + Q, 4), each teacher's (1, B, Q_dn + Q, ...)."""


@MODELS.register_module()
class KSDNDeformableDETRHead(KSDeformableDETRHead, DINOHead):
    """DN-Deformable-DETR head (mmdet's DINO head without two-stage losses) taking KS teacher
    groups in loss; teacher groups use the last decoder layer's branches. Shapes as
    :class:`KSDeformableDETRHead` with Q_dn + Q queries."""
