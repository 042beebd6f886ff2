"""Imports every release format module (each registers itself with ``register_format``)."""
from mmdet_ksdetr.converters.release import dac_detr  # noqa: F401
