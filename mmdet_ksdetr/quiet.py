"""The known third-party noise, filtered by message in this one place.

* Python warnings that the pinned stack raises on every run and that a user cannot act on
  (:data:`THIRD_PARTY_WARNINGS`): installed by ``import mmdet_ksdetr`` before anything else.
* mmengine log lines that repeat per parameter (:data:`LOG_NOISE`): dropped by
  :class:`KnownNoiseFilter`, which the training runner puts on its logger. The frozen teacher
  of a distiller is reported once instead (``teacher: N parameters frozen ...``).
* The long dumps mmengine logs when a runner starts (environment, the whole config, the hook
  order, one line per parameter option; :data:`FILE_ONLY`): kept in the log file, off the
  console (:class:`FileOnlyFilter`) unless the tool runs with ``--verbose``.

Only stdlib imports here: this module runs before torch and mmengine are imported.
"""
import logging
import re
import warnings

#: (category, message regex) of warnings that say nothing a user of this library can act on
THIRD_PARTY_WARNINGS = (
    # mmengine / mmdet import pkg_resources (setuptools < 82 is pinned for it)
    (UserWarning, r'pkg_resources is deprecated as an API'),
    # mmdet's positional encodings call torch.meshgrid without indexing=
    (UserWarning, r'torch\.meshgrid: in an upcoming release'),
)

#: regexes of mmengine log messages dropped by :class:`KnownNoiseFilter`
LOG_NOISE = (
    # one line per frozen teacher parameter from mmengine's optimizer constructor
    r'^teacher\.\S+ is skipped since its requires_grad=False$',
    # mmengine's own deprecations of the file backends its CheckpointHook uses
    r'^"FileClient" will be deprecated in future',
    r'^"HardDiskBackend" is the alias of "LocalBackend"',
)
_LOG_NOISE = tuple(re.compile(p) for p in LOG_NOISE)

#: regexes of mmengine log messages written to the log file only (:class:`FileOnlyFilter`)
FILE_ONLY = (
    r'^\n-+\nSystem environment:',  # environment dump (about 30 lines)
    r'^Config:\n',  # the whole config (hundreds of lines)
    r'^Hooks will be executed in the following order:',  # hook order (about 90 lines)
    r'^paramwise_options -- ',  # one line per parameter and option (hundreds)
)
_FILE_ONLY = tuple(re.compile(p) for p in FILE_ONLY)


def filter_third_party_warnings() -> None:
    """Ignore :data:`THIRD_PARTY_WARNINGS` (by category and message; nothing else)."""
    for category, message in THIRD_PARTY_WARNINGS:
        warnings.filterwarnings('ignore', message=message, category=category)


class KnownNoiseFilter(logging.Filter):
    """Drops log records whose message matches :data:`LOG_NOISE`."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(p.search(message) for p in _LOG_NOISE)


def quiet_logger(logger: logging.Logger) -> logging.Logger:
    """Put one :class:`KnownNoiseFilter` on ``logger`` (idempotent)."""
    if not any(isinstance(f, KnownNoiseFilter) for f in logger.filters):
        logger.addFilter(KnownNoiseFilter())
    return logger


class FileOnlyFilter(logging.Filter):
    """Drops the records whose message matches :data:`FILE_ONLY`; put on console handlers."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(p.search(message) for p in _FILE_ONLY)


def dumps_to_file_only(logger: logging.Logger) -> logging.Logger:
    """Put one :class:`FileOnlyFilter` on every console (non-file) handler of ``logger``, so
    that the start-up dumps go to its log file only (idempotent)."""
    for handler in logger.handlers:
        if isinstance(handler, logging.FileHandler) or \
                not isinstance(handler, logging.StreamHandler):
            continue
        if not any(isinstance(f, FileOnlyFilter) for f in handler.filters):
            handler.addFilter(FileOnlyFilter())
    return logger
