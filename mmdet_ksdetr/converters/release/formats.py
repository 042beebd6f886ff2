"""Imports every release format module (each registers itself with ``register_format``)."""
import mmdet_ksdetr.converters.release.ks_detr  # noqa: F401,E402  (format ks-detr)
