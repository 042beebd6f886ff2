"""The DETR stage order, written once for every detector and for the distillation capture.

mmdet's ``DetectionTransformer`` runs ``pre_transformer`` -> ``forward_encoder`` ->
``pre_decoder`` -> ``forward_decoder`` -> head. The detectors of this library change single
stages only and declare what else they need through three optional hooks, which these
functions call in that order:

* ``pre_decoder_takes_samples`` (class attribute, bool): ``pre_decoder`` gets the batch's data
  samples (denoising queries are built from the GT). mmdet's DINO does; default False.
* ``loss_encoder_inputs(encoder_inputs, img_feats, batch_data_samples) -> dict`` (training
  only): extra ``forward_encoder`` arguments (KS-DETR's GT foreground mask).
* ``loss_head_inputs(decoder_inputs, decoder_outputs, side_outputs) -> dict`` (training only):
  extra ``bbox_head.loss`` arguments computed after the main decoder pass (KS-DETR's teacher
  decoder passes). ``side_outputs`` are the ``forward_encoder`` outputs named in the class
  attribute ``encoder_side_outputs``, which ``pre_decoder`` does not take.

``predict()`` and ``_forward()`` use :func:`forward_transformer` without the training hooks,
so inference is the stock stage order whatever the hooks add.
"""
from typing import Dict, Optional, Sequence, Tuple

from torch import Tensor

__all__ = ['pre_decoder_takes_samples', 'prepare_decoder', 'forward_transformer',
           'loss_head_inputs', 'detr_loss', 'DETRStagesMixin']


def pre_decoder_takes_samples(detector) -> bool:
    """Whether ``detector.pre_decoder`` takes ``batch_data_samples`` (DINO, denoising)."""
    declared = getattr(type(detector), 'pre_decoder_takes_samples', None)
    if declared is not None:
        return bool(declared)
    from mmdet.models.detectors import DINO
    return isinstance(detector, DINO)


def prepare_decoder(detector, img_feats: Sequence[Tensor], batch_data_samples=None,
                    for_loss: bool = False) -> Tuple[Dict, Dict, Dict]:
    """``pre_transformer`` -> ``forward_encoder`` -> ``pre_decoder``.

    Args:
        detector: an mmdet ``DetectionTransformer``.
        img_feats: the neck features (``extract_feat``).
        batch_data_samples: the batch's data samples.
        for_loss: add the detector's ``loss_encoder_inputs`` (training only).

    Returns:
        tuple: ``(decoder_inputs, head_inputs, side_outputs)``: the ``forward_decoder``
        arguments, the head arguments ``pre_decoder`` produced, and the encoder outputs named in
        ``encoder_side_outputs`` (empty for stock detectors).
    """
    encoder_inputs, decoder_inputs = detector.pre_transformer(img_feats, batch_data_samples)
    if for_loss and hasattr(detector, 'loss_encoder_inputs'):
        encoder_inputs.update(detector.loss_encoder_inputs(encoder_inputs, img_feats,
                                                           batch_data_samples))
    encoder_outputs = detector.forward_encoder(**encoder_inputs)
    side_outputs = {k: encoder_outputs.pop(k)
                    for k in getattr(detector, 'encoder_side_outputs', ())
                    if k in encoder_outputs}
    extra = dict(batch_data_samples=batch_data_samples) \
        if pre_decoder_takes_samples(detector) else {}
    tmp_decoder_inputs, head_inputs = detector.pre_decoder(**encoder_outputs, **extra)
    decoder_inputs.update(tmp_decoder_inputs)
    return decoder_inputs, head_inputs, side_outputs


def loss_head_inputs(detector, decoder_inputs: Dict, decoder_outputs: Dict,
                     side_outputs: Dict) -> Dict:
    """The detector's extra ``bbox_head.loss`` arguments (``loss_head_inputs`` hook)."""
    if not hasattr(detector, 'loss_head_inputs'):
        return {}
    return detector.loss_head_inputs(decoder_inputs, decoder_outputs, side_outputs)


def forward_transformer(detector, img_feats: Sequence[Tensor], batch_data_samples=None,
                        for_loss: bool = False) -> Dict:
    """The whole transformer: the head inputs (``hidden_states``, ``references``, ...)."""
    decoder_inputs, head_inputs, side = prepare_decoder(detector, img_feats, batch_data_samples,
                                                        for_loss)
    decoder_outputs = detector.forward_decoder(**decoder_inputs)
    head_inputs.update(decoder_outputs)
    if for_loss:
        head_inputs.update(loss_head_inputs(detector, decoder_inputs, decoder_outputs, side))
    return head_inputs


def detr_loss(detector, batch_inputs: Tensor, batch_data_samples) -> Dict:
    """``DetectionTransformer.loss`` with the training hooks: features, transformer, head."""
    img_feats = detector.extract_feat(batch_inputs)
    head_inputs = forward_transformer(detector, img_feats, batch_data_samples, for_loss=True)
    return detector.bbox_head.loss(**head_inputs, batch_data_samples=batch_data_samples)


class DETRStagesMixin:
    """Mixed in before an mmdet ``DetectionTransformer`` whose stages declare hooks (see the
    module docstring): ``forward_transformer`` and ``loss`` become :func:`forward_transformer`
    and :func:`detr_loss`, the one stage order. Shapes are those of the detector's stages."""

    #: ``pre_decoder`` takes ``batch_data_samples`` (None: as the base detector, DINO does)
    pre_decoder_takes_samples: Optional[bool] = None
    #: ``forward_encoder`` outputs that ``pre_decoder`` does not take
    encoder_side_outputs: Tuple[str, ...] = ()

    def forward_transformer(self, img_feats: Tuple[Tensor], batch_data_samples=None) -> Dict:
        return forward_transformer(self, img_feats, batch_data_samples)

    def loss(self, batch_inputs: Tensor, batch_data_samples) -> Dict:
        return detr_loss(self, batch_inputs, batch_data_samples)
