"""layers of mmdet_ksdetr (registered in mmdet.registry)."""
from .dac_decoder import (DACDeformableDetrTransformerDecoderLayer,
                          DACDeformableDetrTransformerDecoder, DACDinoTransformerDecoder)
from .dn_query_generator import DnQueryGenerator
from .ks_deformable_triple_attention import KSMultiScaleDeformableTripleAttention
from .ks_encoder_layers import (DEFAULT_KS_CFG, build_ks_cfg, KSDetrTransformerEncoderLayer,
                                KSDeformableDetrTransformerEncoderLayer)
from .ks_gt_mask import rasterize_boxes, gt_foreground_token_mask, gt_boxes_of
from .ks_smlp import KSSMLP, KSMarkFg
from .ks_triple_attention import KS_MODES, ks_teacher_streams, KSMultiheadTripleAttention

__all__ = ['DACDeformableDetrTransformerDecoderLayer', 'DACDeformableDetrTransformerDecoder',
           'DACDinoTransformerDecoder', 'DnQueryGenerator',
           'KSMultiScaleDeformableTripleAttention', 'DEFAULT_KS_CFG', 'build_ks_cfg',
           'KSDetrTransformerEncoderLayer', 'KSDeformableDetrTransformerEncoderLayer',
           'rasterize_boxes', 'gt_foreground_token_mask', 'gt_boxes_of', 'KSSMLP', 'KSMarkFg',
           'KS_MODES', 'ks_teacher_streams', 'KSMultiheadTripleAttention']
