"""Release checkpoints of the papers -> checkpoints of this library's (stock mmdet) detectors.

One entry point, :func:`convert_checkpoint`, and one module per release format in this folder,
each registering a :class:`ReleaseFormat` with :func:`register_format`:

==================  =========================================================================
``ks-detr``          edocanonymous/KS-DETR (detrex layout, KS teacher streams)
``detrex``           IDEA-Research/detrex model zoo (DINO, DAB-DETR, Deformable-DETR)
``dac-detr``         huzhengdongcs/DAC-DETR (its own two-stage Deformable-DETR with CDN)
``detr-distill``     BIVLab-USTC/DETRDistill (mmdet 2.x Deformable DETR)
==================  =========================================================================
"""
from mmdet_ksdetr.converters.release.api import (ConversionReport, ReleaseConversionError,
                                                 ReleaseFormat, convert_checkpoint, detect_format,
                                                 is_release_checkpoint, register_format,
                                                 registered_formats)
from mmdet_ksdetr.converters.release import formats  # noqa: F401,E402  (registers the formats)

__all__ = ['ConversionReport', 'ReleaseConversionError', 'ReleaseFormat', 'convert_checkpoint',
           'detect_format', 'is_release_checkpoint', 'register_format', 'registered_formats']
