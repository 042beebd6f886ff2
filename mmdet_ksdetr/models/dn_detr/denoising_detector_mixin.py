"""Denoising training (DN-DETR) for mmdet DETR detectors that mmdet does not ship with it.

mmdet's DINO is the only stock detector with denoising queries; DN-DETR (on DAB-DETR) and
DN-Deformable-DETR (on Deformable DETR) add the same idea to detectors whose stage hooks do not
see the ground truth after ``pre_transformer``. :class:`DenoisingDetectorMixin` is mixed in
before such a detector and

* builds the :class:`~mmdet_ksdetr.models.dn_detr.dn_query_generator.DnQueryGenerator` from
  ``dn_cfg`` (``num_classes``, ``embed_dims``, ``num_matching_queries`` from the detector);
* declares ``pre_decoder_takes_samples``, so the one stage order
  (:mod:`mmdet_ksdetr.models.common.detr_stages`) hands the batch's data samples to
  ``pre_decoder`` (which builds the noised GT queries there, in training only);
* gives ``pre_decoder`` one call, :meth:`add_denoising_queries`, that prepends the denoising
  queries and returns the self-attention mask and ``dn_meta`` (mmdet's DINO layout, so the
  DN losses of :class:`~mmdet_ksdetr.models.dn_detr.denoising_head_mixin.DenoisingHeadMixin`
  and of mmdet's ``DINOHead`` apply).

The detector class provides ``pre_decoder(..., batch_data_samples)`` and a ``forward_decoder``
that takes ``dn_mask``. ``predict()`` never builds denoising queries.
"""
from typing import Optional, Tuple

import torch
from mmdet.structures import OptSampleList
from torch import Tensor

from mmdet_ksdetr.models.common.detr_stages import DETRStagesMixin
from mmdet_ksdetr.models.dn_detr.dn_query_generator import DnQueryGenerator

__all__ = ['DenoisingDetectorMixin']


class DenoisingDetectorMixin(DETRStagesMixin):
    """Denoising queries for a DETR detector (see module docstring).

    Args:
        dn_cfg (dict, optional): :class:`DnQueryGenerator` arguments except ``num_classes``,
            ``embed_dims`` and ``num_matching_queries`` (taken from the detector).
        Other args: those of the detector it is mixed into.
    """

    #: the stage order hands the data samples to ``pre_decoder`` (GT for the noised queries)
    pre_decoder_takes_samples = True

    def __init__(self, *args, dn_cfg: Optional[dict] = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        dn_cfg = dict(dn_cfg or {})
        clash = {'num_classes', 'embed_dims', 'num_matching_queries'} & set(dn_cfg)
        if clash:
            raise ValueError(f'dn_cfg must not set {sorted(clash)}: they are taken from the '
                             f'detector')
        self.dn_query_generator = DnQueryGenerator(
            num_classes=self.bbox_head.num_classes, embed_dims=self.embed_dims,
            num_matching_queries=self.num_queries, **dn_cfg)

    def matching_content_queries(self, batch_size: int) -> Tensor:
        """Content queries of the matching part, (batch_size, Q, C): DN-DETR's "no object"
        label embedding (indicator 0). A detector with learnt content queries overrides it."""
        return self.dn_query_generator.matching_label_query(batch_size)

    def add_denoising_queries(
            self, anchors: Tensor, batch_data_samples: OptSampleList
    ) -> Tuple[Tensor, Tensor, Optional[Tensor], Optional[dict]]:
        """Content queries of the matching part (:meth:`matching_content_queries`), with the
        denoising queries in front in training.

        Args:
            anchors (Tensor): (B, Q, 4) unsigmoided anchor boxes of the matching queries.
            batch_data_samples (list[DetDataSample]): the batch (GT used in training only).

        Returns:
            tuple: ``query`` (B, Q_dn + Q, C) content queries, ``anchors`` (B, Q_dn + Q, 4)
            unsigmoided, ``dn_mask`` (Q_dn + Q, Q_dn + Q) bool or None and ``dn_meta`` or None
            (Q_dn = 0 outside training).
        """
        query = self.matching_content_queries(anchors.size(0))
        if not self.training:
            return query, anchors, None, None
        dn_label, dn_bbox, dn_mask, dn_meta = self.dn_query_generator(batch_data_samples)
        return (torch.cat([dn_label, query], 1), torch.cat([dn_bbox, anchors], 1), dn_mask,
                dn_meta)
