"""DN-DETR head: DAB-DETR's head plus the denoising losses."""
from mmdet.models.dense_heads import DABDETRHead
from mmdet.registry import MODELS

from mmdet_ksdetr.models.dn_detr.denoising_head_mixin import DenoisingHeadMixin

__all__ = ['DNDETRHead']


@MODELS.register_module()
class DNDETRHead(DenoisingHeadMixin, DABDETRHead):
    """Head of DN-DETR (Li et al., CVPR 2022): DAB-DETR's head, trained on the matching
    queries with Hungarian matching and on the leading denoising queries against the GT they
    were noised from (:class:`DenoisingHeadMixin`, ``dn_meta`` from
    :class:`~mmdet_ksdetr.models.dn_detr.dn_query_generator.DnQueryGenerator`).
    Keys: the stock ``loss_*`` / ``d{i}.loss_*`` plus ``dn_loss_*`` / ``d{i}.dn_loss_*``.

    Shapes: ``hidden_states`` (L, B, Q_dn + Q, C), ``references`` (L, B, Q_dn + Q, 4).
    """
