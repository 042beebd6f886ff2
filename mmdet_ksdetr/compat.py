"""Every workaround the pinned OpenMMLab stack needs on torch 2.13 / Python 3.11.

The stack (mmengine 0.10.7, mmcv 2.1.0, mmdet 3.3.0, mmrazor 1.0.0) predates torch 2.6. Each
shim below is narrow, idempotent, names the upstream bug it works around, and has a test in
``tests/test_compat.py`` that fails without it. Installed packages are never edited, and
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` is never set.

Call :func:`apply_all` (``import mmdet_ksdetr`` does it).
"""
import functools
import os
import pickle
import sys
import types
import warnings

import torch

_APPLIED = set()


def _once(name):
    """Run the decorated shim at most once per process."""

    def deco(fn):

        @functools.wraps(fn)
        def wrapper():
            if name in _APPLIED:
                return
            fn()
            _APPLIED.add(name)

        return wrapper

    return deco


# ---------------------------------------------------------------------------------------------
# 1. mmrazor.models / mmrazor.engine import on torch >= 2.0
# ---------------------------------------------------------------------------------------------
# mmrazor#632, #615, #652: ``mmrazor/structures/quantization`` imports torch.ao names that are
# gone in torch 2.x (``reverse2``, ``reverse3``, ``reverse_sequential_wrapper2``,
# ``torch.ao.quantization.backend_config.utils``,
# ``BackendPatternConfig._set_overwrite_output_fake_quantize``). Its fallback placeholders are
# then touched at module level and raise ``ImportError: torch>=1.13 is not installed properly``.
# The chain is models -> algorithms -> quantization -> structures. We never use mmrazor's
# quantization, so a stub of ``mmrazor.structures.quantization`` exporting the two names other
# modules import (``BackendConfigs``, ``QConfigHandler``) breaks the chain; distillation,
# recorders and the engine are untouched. Quantization algorithms fail loudly if used.
_QUANT_MODULE = 'mmrazor.structures.quantization'


class _QuantizationUnavailable:
    """Placeholder for mmrazor's quantization config types (unsupported on torch 2.x)."""

    def __init__(self, *args, **kwargs):
        raise RuntimeError(
            'mmrazor quantization is not available with mmdet_ksdetr on torch>=2.0 '
            '(mmrazor#632); only distillation is supported.')


def _mmrazor_quantization_importable():
    try:
        from torch.ao.quantization.fuser_method_mappings import reverse2  # noqa: F401
        from torch.ao.quantization.backend_config import utils  # noqa: F401
        return True
    except ImportError:
        return False


@_once('mmrazor_quantization_stub')
def patch_mmrazor_quantization_import():
    if _QUANT_MODULE in sys.modules or _mmrazor_quantization_importable():
        return
    stub = types.ModuleType(_QUANT_MODULE)
    stub.__doc__ = 'Stub installed by mmdet_ksdetr.compat (mmrazor#632).'
    stub.BackendConfigs = {}
    stub.QConfigHandler = _QuantizationUnavailable
    stub.__all__ = ['BackendConfigs', 'QConfigHandler']
    sys.modules[_QUANT_MODULE] = stub


# ---------------------------------------------------------------------------------------------
# 2. torch.load(weights_only=True) for the checkpoints mmengine writes
# ---------------------------------------------------------------------------------------------
# torch 2.6 made ``weights_only=True`` the default; mmengine 0.10.7 calls ``torch.load`` without
# the argument (mmengine#1655, PR#1650), and every runner checkpoint holds ``message_hub``
# (``HistoryBuffer`` objects with numpy arrays) and sometimes numpy scalars in ``meta``. We
# allow-list exactly those data-only types so resume / load_from / teacher_ckpt / test.py work
# while an untrusted checkpoint still cannot run code. numpy pickles the (empty) data of an empty
# array - an empty ``HistoryBuffer`` - as ``builtins.bytes()``, which torch also refuses
# ("Unsupported global: GLOBAL bytes"): a narrow stand-in answers it.
_HISTORY_BUFFER_STATISTICS = ('min', 'max', 'current', 'mean')


def _history_buffer_getattr(obj, name):
    """Stand-in for ``builtins.getattr`` while unpickling: ``HistoryBuffer.__getstate__`` saves
    its ``_statistics_methods`` as ``getattr(HistoryBuffer, 'mean')`` etc. Allowing the real
    ``getattr`` would let a checkpoint reach any attribute of any allowed object (e.g.
    ``ndarray.tofile``), so only those four look-ups are answered."""
    from mmengine.logging.history_buffer import HistoryBuffer
    if obj is HistoryBuffer and name in _HISTORY_BUFFER_STATISTICS:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'checkpoint asks for getattr({obj!r}, {name!r}), which is not allowed under '
        f'weights_only loading (only HistoryBuffer statistics methods are)')


def _empty_bytes(*args):
    """Stand-in for ``builtins.bytes`` while unpickling: numpy pickles the data of an *empty*
    array (e.g. an empty ``HistoryBuffer`` history) as ``bytes()``, a global torch's allow-list
    lacks. Only that call (and a copy of a bytes object) is answered; ``bytes(n)`` with an
    integer, which a checkpoint could use to allocate any amount of memory, is refused."""
    if not args:
        return b''
    if len(args) == 1 and isinstance(args[0], (bytes, bytearray)):
        return bytes(args[0])
    raise pickle.UnpicklingError(
        f'checkpoint asks for bytes{tuple(type(a).__name__ for a in args)}, which is not '
        f'allowed under weights_only loading (only bytes() of empty numpy data is)')


def _safe_checkpoint_types():
    import collections

    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer

    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar
    dtype_classes = [type(np.dtype(t)) for t in (
        np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
        np.uint64, np.float16, np.float32, np.float64, np.str_, np.object_)]
    return [HistoryBuffer, _reconstruct, scalar, np.ndarray, np.dtype, collections.Counter,
            (_history_buffer_getattr, 'builtins.getattr'),
            (_empty_bytes, 'builtins.bytes')] + dtype_classes


@_once('torch_load_safe_globals')
def allow_mmengine_checkpoint_types():
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is None:  # torch < 2.4: weights_only is not the default there
        return
    add(_safe_checkpoint_types())


# ---------------------------------------------------------------------------------------------
# 3. Distributed training on CPU (gloo)
# ---------------------------------------------------------------------------------------------
# mmengine 0.10.7 ``_init_dist_pytorch`` calls ``torch.cuda.set_device`` unconditionally (fails on
# a CPU build), mmdet's default_runtime asks for ``nccl``, and ``Runner.wrap_model`` passes
# ``device_ids=[LOCAL_RANK]`` to DDP, which rejects it for CPU modules. On machines without
# CUDA we initialise gloo and drop device_ids; with CUDA the original code runs unchanged.
@_once('cpu_distributed')
def patch_cpu_distributed():
    import mmengine.dist.utils as dist_utils
    from mmengine.model.wrappers import MMDistributedDataParallel

    original_init = dist_utils._init_dist_pytorch

    @functools.wraps(original_init)
    def init_dist_pytorch(backend, init_backend='torch', **kwargs):
        if torch.cuda.is_available() or init_backend != 'torch':
            return original_init(backend, init_backend=init_backend, **kwargs)
        if backend != 'gloo':
            warnings.warn(f'CUDA is not available: using the gloo backend instead of '
                          f'"{backend}" for CPU distributed training.')
        torch.distributed.init_process_group(
            backend='gloo',
            rank=int(os.environ['RANK']),
            world_size=int(os.environ['WORLD_SIZE']),
            **kwargs)

    init_dist_pytorch.__mmdet_ksdetr_patched__ = True
    dist_utils._init_dist_pytorch = init_dist_pytorch

    original_ddp_init = MMDistributedDataParallel.__init__

    @functools.wraps(original_ddp_init)
    def ddp_init(self, module, detect_anomalous_params=False, **kwargs):
        on_cpu = all(p.device.type == 'cpu' for p in module.parameters())
        if on_cpu and not torch.cuda.is_available():
            kwargs.pop('device_ids', None)
            kwargs.pop('output_device', None)
        original_ddp_init(self, module=module,
                          detect_anomalous_params=detect_anomalous_params, **kwargs)

    ddp_init.__mmdet_ksdetr_patched__ = True
    MMDistributedDataParallel.__init__ = ddp_init


# ---------------------------------------------------------------------------------------------
# 4. ``mmdet_ksdetr::`` config paths
# ---------------------------------------------------------------------------------------------
# mmengine resolves ``pkg::dir/cfg.py`` only for the packages named in its fixed
# ``MODULE2PACKAGE`` table, finds the package as ``<dist location>/<name>`` and reads the configs
# and model index from ``<package>/.mim``. Two installs break that: an editable install (PEP 660,
# pip >= 21.3), whose dist location is site-packages while the code stays in the checkout, and a
# source checkout on PYTHONPATH, whose package has no ``.mim`` (setup.py makes it). We fall back
# to where Python imports the package from, and to the checkout's ``configs/`` and
# ``model-index.yml`` when the package has no ``.mim``. The registry scope those configs get
# (``_scope_='mmdet_ksdetr'``) is :mod:`mmdet_ksdetr.registry`.
_PACKAGE = 'mmdet_ksdetr'


def package_dir():
    """The folder ``mmdet_ksdetr`` is imported from (no import of the package needed)."""
    import importlib.util
    spec = importlib.util.find_spec(_PACKAGE)
    return os.path.dirname(spec.origin) if spec is not None and spec.origin else None


def mim_root(package_path=None):
    """The folder holding this package's ``configs/`` and ``model-index.yml``: ``.mim`` inside
    the package (wheel or editable install), else the source checkout around it; None if
    neither has them."""
    package_path = package_path or package_dir()
    if package_path is None:
        return None
    for root in (os.path.join(package_path, '.mim'), os.path.dirname(package_path)):
        if os.path.isfile(os.path.join(root, 'model-index.yml')) and \
                os.path.isdir(os.path.join(root, 'configs')):
            return root
    return None


def _is_this_package(package_path):
    own = package_dir()
    return own is not None and os.path.realpath(package_path) == os.path.realpath(own)


def _config_by_model_name(root, name):
    """``<root>/<Config>`` of the model called ``name`` in the model index (mmengine's
    ``pkg::<dir>/<model name>`` form); ValueError when no model has that name."""
    import yaml
    with open(os.path.join(root, 'model-index.yml')) as f:
        metafiles = yaml.safe_load(f)['Import']
    for meta in metafiles:
        with open(os.path.join(root, meta)) as f:
            for model in yaml.safe_load(f).get('Models', []):
                if model.get('Config', '').partition('/')[-1].split('.')[0] == name:
                    return os.path.join(root, model['Config'])
    raise ValueError(f'no model "{name}" in {os.path.join(root, "model-index.yml")}')


@_once('external_config_package')
def register_config_package():
    import mmengine.config.config as config_module
    from mmengine.config import utils as config_utils

    config_utils.MODULE2PACKAGE.setdefault(_PACKAGE, _PACKAGE)
    original_path = config_module.get_installed_path
    original_cfg = config_module._get_external_cfg_path
    original_base = config_module._get_external_cfg_base_path

    @functools.wraps(original_path)
    def get_installed_path(package):
        path = original_path(package)
        if package == _PACKAGE and not os.path.isdir(path):
            return package_dir() or path
        return path

    @functools.wraps(original_cfg)
    def get_external_cfg_path(package_path, cfg_file):
        root = mim_root(package_path) if _is_this_package(package_path) else None
        if root is None:
            return original_cfg(package_path, cfg_file)
        return _config_by_model_name(root, cfg_file.split('.')[0])

    @functools.wraps(original_base)
    def get_external_cfg_base_path(package_path, cfg_name):
        root = mim_root(package_path) if _is_this_package(package_path) else None
        if root is None:
            return original_base(package_path, cfg_name)
        path = os.path.join(root, 'configs', cfg_name)
        if not os.path.isfile(path):
            raise FileNotFoundError(f'config "{_PACKAGE}::{cfg_name}" not found: no '
                                    f'{path}')
        return path

    for fn in (get_installed_path, get_external_cfg_path, get_external_cfg_base_path):
        fn.__mmdet_ksdetr_patched__ = True
    config_module.get_installed_path = get_installed_path
    config_module._get_external_cfg_path = get_external_cfg_path
    config_module._get_external_cfg_base_path = get_external_cfg_base_path


# ---------------------------------------------------------------------------------------------
# 5. mmengine's own checkpoint loader (PretrainedInit, load_checkpoint, CheckpointLoader)
# ---------------------------------------------------------------------------------------------
# mmengine 0.10.7's ``CheckpointLoader`` schemes call ``torch.load`` without ``weights_only``
# (mmengine#1655), so with ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` in the environment a
# backbone's ``init_cfg=dict(type='Pretrained', checkpoint=...)`` unpickles - and runs - any
# code in the file, and without it a hostile file ends in torch's UnpicklingError traceback.
# The schemes that read a file (local, http(s), torchvision://, modelzoo://, open-mmlab://,
# openmmlab://, mmcls://, s3:// / petrel://, pavi://) are re-registered (``force=True``) to go
# through the library's one safe loader, which ``mmdet_ksdetr.utils.checks`` hands in (this
# module sits below utils and cannot import it). Model-zoo names still resolve through
# mmengine's own tables.
_ROUTED_SCHEMES = {}


def _scheme_loaders(safe_load):
    """``{prefixes: loader}`` of the re-registered schemes; ``safe_load(path_or_url)`` is the
    library's safe loader, ``safe_bytes(data, name)`` its twin for remote storage."""
    import os.path as osp
    import tempfile

    from mmengine.runner import checkpoint as ckpt

    def local(filename, map_location=None):
        return safe_load(osp.expanduser(filename))

    def http(filename, map_location=None, model_dir=None, progress=False):
        from mmengine.dist import get_dist_info
        rank, world_size = get_dist_info()
        if world_size > 1 and rank > 0:  # rank 0 downloads, the others read its copy
            torch.distributed.barrier()
            return safe_load(filename)
        checkpoint = safe_load(filename)
        if world_size > 1:
            torch.distributed.barrier()
        return checkpoint

    def torchvision(filename, map_location=None):
        name = filename.split('://', 1)[1]
        return http(ckpt.get_torchvision_models()[name])

    def openmmlab(filename, map_location=None):
        name = filename.split('://', 1)[1]
        name = ckpt.get_deprecated_model_names().get(name, name)
        url = ckpt.get_external_models()[name]
        if url.startswith(('http://', 'https://')):
            return http(url)
        return safe_load(osp.join(ckpt._get_mmengine_home(), url))

    def mmcls(filename, map_location=None):
        url = ckpt.get_mmcls_models()[filename[len('mmcls://'):]]
        return ckpt._process_mmcls_checkpoint(http(url))

    def from_bytes(data, name):
        with tempfile.TemporaryDirectory() as folder:
            path = osp.join(folder, osp.basename(name) or 'checkpoint.pth')
            with open(path, 'wb') as f:
                f.write(data)
            try:
                return safe_load(path)
            except ValueError as e:  # name the remote file, not the temporary copy
                raise type(e)(str(e).replace(path, name)) from None

    def ceph(filename, map_location=None, backend='petrel'):
        from mmengine.fileio import get_file_backend
        backend = get_file_backend(filename, backend_args={'backend': backend})
        return from_bytes(backend.get(filename), filename)

    def pavi(filename, map_location=None):
        from pavi import modelcloud
        model = modelcloud.get(filename[len('pavi://'):])
        with tempfile.TemporaryDirectory() as folder:
            path = osp.join(folder, model.name)
            model.download(path)
            with open(path, 'rb') as f:
                return from_bytes(f.read(), filename)

    return {('', ): local, ('http://', 'https://'): http,
            ('modelzoo://', 'torchvision://'): torchvision,
            ('open-mmlab://', 'openmmlab://'): openmmlab, ('mmcls://', ): mmcls,
            (r'(\S+\:)?s3://', r'(\S+\:)?petrel://'): ceph, ('pavi://', ): pavi}


def route_mmengine_checkpoint_loading(safe_load):
    """Make every file-reading scheme of mmengine's ``CheckpointLoader`` load through
    ``safe_load(path_or_url) -> checkpoint`` (idempotent; returns the prefixes routed)."""
    from mmengine.runner.checkpoint import CheckpointLoader
    for prefixes, loader in _scheme_loaders(safe_load).items():
        loader.__mmdet_ksdetr_patched__ = True
        CheckpointLoader.register_scheme(list(prefixes), loader, force=True)
        for prefix in prefixes:
            _ROUTED_SCHEMES[prefix] = loader
    return sorted(_ROUTED_SCHEMES)


@_once('mmcv_mha_dropout_default')
def fix_mmcv_attention_dropout_default():
    """mmcv 2.1.0's ``MultiheadAttention.__init__`` turns the deprecated ``dropout=`` argument
    into ``dropout_layer['drop_prob'] = kwargs.pop('dropout')`` on its *default* argument dict,
    so once one attention is built with ``dropout=0.1`` (mmdet's Conditional / DAB-DETR configs
    do, and so do the detrex-release configs) every later ``MultiheadAttention`` built without
    ``dropout_layer`` in the same process silently gets that dropout: e.g. a distillation
    student built after its teacher. Give each call its own default dict (the default value is
    unchanged)."""
    from mmcv.cnn.bricks.transformer import MultiheadAttention
    init = MultiheadAttention.__init__
    position = 4  # (embed_dims, num_heads, attn_drop, proj_drop, dropout_layer, ...)

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        if len(args) <= position and 'dropout_layer' not in kwargs:
            kwargs['dropout_layer'] = dict(type='Dropout', drop_prob=0.)
        init(self, *args, **kwargs)

    MultiheadAttention.__init__ = __init__


@_once('config_pretty_text')
def fix_config_pretty_text():
    """mmengine 0.10.7's ``Config.pretty_text`` runs yapf over the whole config (about a second
    for a detector) every time it is read, and every checkpoint save reads it; and it turns any
    exception raised inside yapf into ``SyntaxError`` with a bare ``except``, so a Ctrl-C that
    lands while a checkpoint is being saved ends as a SyntaxError traceback (or is lost) instead
    of a ``KeyboardInterrupt``. Memoise the formatter (a pure function of text and style; the
    last few texts are kept) and let ``KeyboardInterrupt`` through."""
    import mmengine.config.config as config_module
    from yapf.yapflib import yapf_api
    cache = {}

    def FormatCode(text, style_config=None, **kwargs):  # noqa: N802 (yapf's name)
        key = (text, repr(style_config), repr(sorted(kwargs.items())))
        if key not in cache:
            if len(cache) >= 8:
                cache.pop(next(iter(cache)))
            cache[key] = yapf_api.FormatCode(text, style_config=style_config, **kwargs)
        return cache[key]

    config_module.FormatCode = FormatCode
    original = config_module.Config.pretty_text

    def pretty_text(self):
        try:
            return original.fget(self)
        except SyntaxError as e:
            if isinstance(e.__context__, KeyboardInterrupt):
                raise e.__context__ from None
            raise

    config_module.Config.pretty_text = property(pretty_text, doc=original.__doc__)


def apply_all():
    """Apply every shim; safe to call more than once."""
    patch_mmrazor_quantization_import()
    allow_mmengine_checkpoint_types()
    patch_cpu_distributed()
    register_config_package()
    fix_mmcv_attention_dropout_default()
    fix_config_pretty_text()
