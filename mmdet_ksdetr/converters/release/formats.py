"""Imports every release format module (each registers itself with ``register_format``)."""
