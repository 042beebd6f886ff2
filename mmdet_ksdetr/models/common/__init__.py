"""Pieces shared by several papers' detectors: the DETR stage order (:mod:`.detr_stages`)."""
from .detr_stages import (DETRStagesMixin, detr_loss, forward_transformer, loss_head_inputs,
                          pre_decoder_takes_samples, prepare_decoder)

__all__ = ['DETRStagesMixin', 'detr_loss', 'forward_transformer', 'loss_head_inputs',
           'pre_decoder_takes_samples', 'prepare_decoder']
