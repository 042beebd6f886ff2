"""Training machinery for mmengine runners: hooks."""
from . import hooks  # noqa: F401  (registers the hooks)
