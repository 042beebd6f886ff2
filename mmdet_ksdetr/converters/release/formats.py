"""Imports every release format module (each registers itself with ``register_format``)."""
import mmdet_ksdetr.converters.release.detr_distill  # noqa: F401
