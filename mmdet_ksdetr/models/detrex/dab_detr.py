"""DAB-DETR and DN-DETR exactly as detrex (and the KS-DETR release built on it) compute them at
inference: mmdet's detectors with :class:`DetrexDABDetrTransformerDecoder`."""
from mmdet.models.detectors import DABDETR
from mmdet.registry import MODELS

from mmdet_ksdetr.models.detrex.dab_decoder import DetrexDABDetrTransformerDecoder
from mmdet_ksdetr.models.dn_detr.dn_detr import DNDETR

__all__ = ['DetrexDABDecoderMixin', 'DetrexDABDETR', 'DetrexDNDETR']


class DetrexDABDecoderMixin:
    """Builds the decoder as :class:`DetrexDABDetrTransformerDecoder` (detrex's anchor-update
    ``inverse_sigmoid`` eps); everything else is the base detector's."""

    def _init_layers(self) -> None:
        decoder_cfg = self.decoder
        super()._init_layers()
        self.decoder = DetrexDABDetrTransformerDecoder(**decoder_cfg)


@MODELS.register_module()
class DetrexDABDETR(DetrexDABDecoderMixin, DABDETR):
    """mmdet ``DABDETR`` with detrex's anchor update, for detrex / KS-DETR release weights.

    Shapes as ``DABDETR``: anchors ``query_embedding`` (Q, 4); outputs per decoder layer
    logits (L, bs, Q, num_classes) and boxes (L, bs, Q, 4) normalised cxcywh.
    """


@MODELS.register_module()
class DetrexDNDETR(DetrexDABDecoderMixin, DNDETR):
    """Our ``DNDETR`` with detrex's anchor update, for detrex / KS-DETR DN-DETR weights.

    Shapes as :class:`DetrexDABDETR` (plus the denoising queries in training).
    """
