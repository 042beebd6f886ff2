"""Pieces shared by several papers' models.

=============================  ==========================================================
``detr_stages.py``              the DETR stage order, written once (``DETRStagesMixin``,
                                ``prepare_decoder``, ``forward_transformer``, ``detr_loss``)
=============================  ==========================================================
"""
from mmdet_ksdetr.models.common.detr_stages import (DETRStagesMixin, detr_loss,
                                                    forward_transformer, loss_head_inputs,
                                                    pre_decoder_takes_samples, prepare_decoder)

__all__ = ['DETRStagesMixin', 'detr_loss', 'forward_transformer', 'loss_head_inputs',
           'pre_decoder_takes_samples', 'prepare_decoder']
