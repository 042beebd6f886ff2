"""Imports every release format module (each registers itself with ``register_format``)."""
import mmdet_ksdetr.converters.release.dac_detr  # noqa: F401
