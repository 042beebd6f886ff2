"""Imports every release format module (each registers itself with ``register_format``)."""
import mmdet_ksdetr.converters.release.dac_detr  # noqa: F401  (a module import: no package cycle)
import mmdet_ksdetr.converters.release.detr_distill  # noqa: F401
import mmdet_ksdetr.converters.release.detrex  # noqa: F401
import mmdet_ksdetr.converters.release.ks_detr  # noqa: F401
