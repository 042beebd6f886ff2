"""Imports every release format module (each registers itself with ``register_format``)."""
from mmdet_ksdetr.converters.release import ks_detr  # noqa: F401,E402
