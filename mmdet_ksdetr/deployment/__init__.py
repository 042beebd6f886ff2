"""ONNX export of DETR-family detectors (``tools/deployment/export_onnx.py``)."""
from mmdet_ksdetr.deployment.wrapper import (DetrExportWrapper, UnsupportedDetectorError,
                                             check_exportable, topk_detections)

__all__ = ['DetrExportWrapper', 'UnsupportedDetectorError', 'check_exportable',
           'topk_detections']
