"""What every DAC-DETR detector shares: the ``with_c_stream`` switch, the check that the head
computes the C-stream losses, and the DAC decoder in place of the stock one."""
from typing import Type

from torch import nn

from mmdet_ksdetr.models.dac_detr.dac_head_mixin import DACHeadMixin


class DACDetectorMixin:
    """Mixed in before an mmdet DETR detector: builds :attr:`dac_decoder_class` from the
    config's ``decoder`` (its ``share_first_self_attn`` key is the DAC decoder's alone) and
    requires a :class:`DACHeadMixin` head. ``with_c_stream=False`` trains without the C-stream
    (an ablation)."""

    #: the DAC decoder that replaces the detector's stock one (set by each detector)
    dac_decoder_class: Type[nn.Module] = None

    def __init__(self, *args, with_c_stream: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.with_c_stream = bool(with_c_stream)
        if not isinstance(self.bbox_head, DACHeadMixin):
            raise TypeError(f'{type(self).__name__} needs a DAC head (bbox_head type '
                            f'"DAC{type(self).__name__[3:]}Head", with the C-stream losses), '
                            f'got {type(self.bbox_head).__name__}')

    def _init_layers(self) -> None:
        decoder_cfg = dict(self.decoder)
        self.decoder = {k: v for k, v in decoder_cfg.items() if k != 'share_first_self_attn'}
        super()._init_layers()
        self.decoder = self.dac_decoder_class(**decoder_cfg)
