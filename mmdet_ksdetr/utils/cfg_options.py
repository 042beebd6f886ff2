"""``--cfg-options`` of every tool: mmengine's ``DictAction`` (``key=value``, lists
``a,b`` / ``[a,b]``, tuples ``(a,b)``, nested keys ``a.b.c=v``) with a one-line error where it
would crash or silently take the text as a string."""
from mmengine.config import DictAction

__all__ = ['CfgOptionsAction', 'add_tool_config_arguments', 'check_cfg_option_keys',
           'load_tool_config', 'parse_tool_args', 'unknown_option_key']


class CfgOptionsAction(DictAction):
    """``DictAction`` that refuses what it cannot parse with one argparse error line:

    * ``key=dict(...)`` / ``key={...}``: mmengine recurses until Python's recursion limit on
      a ``dict(...)`` value; set the keys one by one (``train_cfg.max_epochs=1``);
    * an item without ``=``, or an empty key.
    """

    def __call__(self, parser, namespace, values, option_string=None):
        for item in values:
            key, sep, value = item.partition('=')
            if not sep or not key:
                parser.error(f'{option_string} {item!r}: expected key=value (e.g. '
                             f'train_cfg.max_epochs=1)')
            if value.lstrip().startswith(('dict(', '{')):
                parser.error(f'{option_string} {key}={value}: dict values are not supported; '
                             f'set each key on its own, e.g. {key}.KEY=VALUE')
        try:
            super().__call__(parser, namespace, values, option_string)
        except RecursionError:
            parser.error(f'{option_string}: cannot parse {" ".join(values)!r} (unbalanced '
                         f'brackets or quotes?)')


# --- keys that match nothing in the config ---------------------------------------------------
#: top-level keys mmengine's Runner (and CrashSafeRunner) read although a config may lack them
RUNNER_KEYS = ('randomness', 'env_cfg', 'resume', 'load_from', 'launcher', 'log_level',
               'log_processor', 'visualizer', 'default_scope', 'experiment_name',
               'auto_scale_lr', 'custom_hooks', 'default_hooks', 'work_dir', 'strict_load',
               'runner_type', 'cfg', 'train_cfg', 'val_cfg', 'test_cfg', 'param_scheduler')
ALLOW_NEW_FLAG = '--cfg-options-allow-new'
_REGISTRY_NAMES = ('MODELS', 'DATASETS', 'TRANSFORMS', 'LOOPS', 'OPTIMIZERS',
                   'OPTIM_WRAPPERS', 'PARAM_SCHEDULERS', 'HOOKS', 'METRICS', 'TASK_UTILS',
                   'DATA_SAMPLERS', 'VISUALIZERS', 'VISBACKENDS', 'LOG_PROCESSORS', 'RUNNERS',
                   'EVALUATOR')


def _registered_class(type_name, scope=None):
    """The class a config's ``type`` names, looked up in mmdet's registries; None if unknown."""
    if isinstance(type_name, type):
        return type_name
    if not isinstance(type_name, str):
        return None
    import mmdet.registry as registries
    for name in _REGISTRY_NAMES:
        registry = getattr(registries, name, None)
        try:
            obj = registry.get(type_name) if registry is not None else None
        except Exception:  # noqa: BLE001
            obj = None
        if isinstance(obj, type):
            return obj
    return None


def accepted_arguments(cls):
    """Keyword names ``cls(...)`` accepts, following ``**kwargs`` up the MRO; None when a
    ``**kwargs`` is open all the way (anything may be accepted)."""
    import inspect
    names = set()
    for klass in cls.__mro__:
        if '__init__' not in vars(klass) or klass is object:
            continue
        try:
            params = inspect.signature(vars(klass)['__init__']).parameters.values()
        except (TypeError, ValueError):
            return None
        names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            return names - {'self'}
    return None


def _dotted_keys(node, prefix=''):
    if isinstance(node, dict):
        for k, v in node.items():
            key = f'{prefix}{k}'
            yield key
            yield from _dotted_keys(v, key + '.')


def _nearest(wanted, candidates):
    import difflib
    found = difflib.get_close_matches(wanted, list(candidates), n=1, cutoff=0.6)
    return f'; did you mean {found[0]}?' if found else ''


def unknown_option_key(cfg, key):
    """Why ``--cfg-options key=...`` matches nothing in ``cfg`` (one line), or None when it
    does. A key is fine when it exists, when it adds an argument the ``type`` of its dict
    accepts (by signature, e.g. ``train_dataloader.dataset.indices``) or lies under a
    top-level key the runner reads (:data:`RUNNER_KEYS`, e.g. ``randomness.seed``). A key
    under a ``None`` value (e.g. ``model.backbone.init_cfg.type`` where ``init_cfg=None``) is
    refused whatever ``allow_new`` says: mmengine cannot merge it."""
    parts = key.split('.')
    cfg = node = getattr(cfg, '_cfg_dict', cfg)  # a Config: its ConfigDict
    for i, part in enumerate(parts):
        here = '.'.join(parts[:i + 1])
        parent = '.'.join(parts[:i]) or 'the config'
        if node is None:  # mmengine cannot merge keys into a None value (TypeError)
            return (f'{here}: {parent} is None in the config, so its keys cannot be set one '
                    f'by one; set {parent} = dict(...) in a config that inherits this one')
        if isinstance(node, (list, tuple)):
            if part.isdigit() and int(part) < len(node):
                node = node[int(part)]
                continue
            return f'{here}: {parent} is a list of {len(node)}; give an index below {len(node)}'
        if not isinstance(node, dict):
            return (f'{here}: {parent} is a {type(node).__name__} ({node!r}), not a dict; set '
                    f'{parent}=VALUE instead')
        if part in node:
            node = node[part]
            continue
        if i == 0 and part in RUNNER_KEYS:
            return None
        if i == len(parts) - 1 and 'type' in node:
            cls = _registered_class(node['type'])
            accepted = accepted_arguments(cls) if cls is not None else None
            if accepted is None or part in accepted:
                return None
            siblings = [f'{parent}.{a}' for a in sorted(accepted | set(node))]
            return (f'{here}: {cls.__name__} ({parent}.type) takes no argument "{part}" '
                    f'(remove or rename that key){_nearest(here, siblings)}')
        where = 'the config has no' if i == 0 else f'{parent} has no'
        return f'{here}: {where} key "{part}"{_nearest(here, _dotted_keys(cfg))}'
    return None


def check_cfg_option_keys(cfg, options, allow_new=False):
    """Raise :class:`~mmdet_ksdetr.utils.errors.InputError` (one line) for the first
    ``--cfg-options`` key that matches nothing in ``cfg`` (see :func:`unknown_option_key`),
    naming the nearest existing key; ``allow_new`` (``--cfg-options-allow-new``) lets new
    keys through, as mmengine does."""
    if not options:
        return
    from mmdet_ksdetr.utils.errors import InputError
    for key in options:
        problem = unknown_option_key(cfg, key)
        if problem and ' is None in the config' in problem:
            raise InputError(f'--cfg-options {problem}')
        if problem and not allow_new:
            raise InputError(f'--cfg-options {problem} (to add a new key anyway: '
                             f'{ALLOW_NEW_FLAG})')


def add_input_check_arguments(parser):
    """The tools' switches for the up-front input checks: ``--cfg-options-allow-new`` (let
    ``--cfg-options`` add keys the config lacks) and ``--skip-image-check`` (do not decode
    every image before the run; missing files are still found)."""
    parser.add_argument(ALLOW_NEW_FLAG, action='store_true',
                        help='let --cfg-options add keys that the config does not have (by '
                        'default such a key is an error naming the nearest existing key)')
    parser.add_argument('--skip-image-check', action='store_true',
                        help='do not decode every image of the data set before the run '
                        '(missing image files are still reported)')
    return parser


def add_tool_config_arguments(parser):
    """The arguments ``tools/train.py`` and ``tools/test.py`` share, read by
    :func:`load_tool_config`: ``--cfg-options`` and its input checks, ``--non-strict``,
    ``--launcher``, ``--verbose`` and ``--local_rank``."""
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction,
                        help='override config settings, key=value pairs (xxx=yyy)')
    add_input_check_arguments(parser)  # --cfg-options-allow-new, --skip-image-check
    parser.add_argument(
        '--non-strict', action='store_true',
        help='load a checkpoint that does not fit the model (missing / unexpected / mis-shaped '
        'keys are logged in one line and skipped); the default stops with the list of keys')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--verbose', action='store_true',
                        help='also print the environment, config and hook-order dumps on the '
                        'console (they always go to the log file)')
    # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return parser


def parse_tool_args(parser, argv=None):
    """``parser.parse_args(argv)``, and ``LOCAL_RANK`` set from ``--local_rank`` where the
    launcher did not set it."""
    import os
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def load_tool_config(args):
    """The config of ``tools/train.py`` / ``tools/test.py`` from their shared arguments:
    ``args.config`` (path checked), ``--launcher``, ``--cfg-options`` (keys checked, then
    merged; ``data_root=PATH`` moves all the data), ``--non-strict``, ``--verbose`` and the
    work dir (``--work-dir``, else the config's, else ``./work_dirs/<config name>``)."""
    import os.path as osp

    from mmengine.config import Config

    from mmdet_ksdetr.utils.checks import check_config_path
    from mmdet_ksdetr.utils.data_root import merge_cfg_options
    cfg = Config.fromfile(check_config_path(args.config))
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        check_cfg_option_keys(cfg, args.cfg_options, args.cfg_options_allow_new)
        merge_cfg_options(cfg, args.cfg_options)
    if args.non_strict:
        cfg.strict_load = False
    if args.verbose:
        cfg.log_dumps_to_console = True
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg
