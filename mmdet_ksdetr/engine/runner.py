"""``CrashSafeRunner``: mmengine's Runner for long jobs on pre-emptible clusters.

* **Atomic checkpoints.** ``epoch_N.pth`` / ``iter_N.pth`` / best checkpoints are written to a
  temporary file, fsynced and renamed; ``last_checkpoint`` likewise (through
  :class:`~.checkpoint_hook.CrashSafeCheckpointHook`, which replaces a stock ``CheckpointHook``).
  A ``kill -9`` during a save leaves the previous files as they were.
* **Auto-resume that survives a crash.** ``resume=True`` without ``load_from`` resumes from the
  newest checkpoint in the work dir that loads (:mod:`.auto_resume`) and logs what it skipped.
* **Exact resume.** Checkpoints carry every rank's python / numpy / torch (CPU + CUDA) generator
  states (``meta['rng_states']``); a resumed rank restores its own, the run's seed is taken
  from the checkpoint before the sampler is built, and training dataloader workers are seeded
  from the restored generator each epoch. A resumed run gives the weights and logged losses of
  the uninterrupted run.
* **Safe, strict loading.** ``load_from``, resume and ``tools/test.py`` load through
  :func:`~mmdet_ksdetr.utils.checks.load_checkpoint_safely` (``weights_only=True``) and stop
  when the checkpoint does not fit the model, unless the config sets ``strict_load=False``.
"""
import os
import os.path as osp
import re
from collections import OrderedDict

from mmengine.dist import broadcast_object_list, get_world_size, is_main_process
from mmengine.model import is_model_wrapper
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from mmdet_ksdetr.engine.auto_resume import (NoUsableCheckpointError, find_resumable_checkpoint,
                                             partial_checkpoint_files)
from mmdet_ksdetr.engine.checkpoint_fit import (distillation_checkpoint_problem,
                                                mostly_missing_problem)
from mmdet_ksdetr.engine.rng_state import (gather_rng_states, restore_rng_state,
                                           seed_worker_from_loader)
from mmdet_ksdetr.quiet import dumps_to_file_only, quiet_logger
from mmdet_ksdetr.utils.checkpoint_io import (CheckpointMismatchError, atomic_output, atomic_write,
                                              check_state_dict_fits, describe_mismatch)
from mmdet_ksdetr.utils.checks import InputError, load_checkpoint_safely

_STRICT_HINT = ('(to load it anyway: --non-strict on tools/train.py / tools/test.py, or '
                'strict_load=False in the config)')


@RUNNERS.register_module()
class CrashSafeRunner(Runner):
    """mmengine ``Runner`` with atomic checkpoints, crash-tolerant auto-resume, exact resume
    (every rank's RNG state) and ``weights_only`` strict checkpoint loading.

    Built like mmengine's Runner (``CrashSafeRunner.from_cfg(cfg)``, or ``runner_type =
    'CrashSafeRunner'`` in a config). Extra config keys: ``strict_load`` (default True) and
    ``log_dumps_to_console`` (default False: the environment / config / hook-order dumps go to
    the log file only; ``--verbose`` on the tools sets it).
    """

    _rng_state_to_restore = None  # set by resume(), applied after the before_train hooks

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        quiet_logger(self.logger)  # drop the known per-parameter noise (mmdet_ksdetr.quiet)
        self._strict_load = bool(self.cfg.get('strict_load', True))
        self._seed_train_workers_per_epoch()

    def build_logger(self, *args, **kwargs):
        """mmengine's logger; its console shows the start-up dumps only with
        ``log_dumps_to_console=True`` (they always go to the log file)."""
        logger = super().build_logger(*args, **kwargs)
        if not self.cfg.get('log_dumps_to_console', False):
            dumps_to_file_only(logger)
        return logger

    # --- hooks and dataloader ---------------------------------------------------------------
    def register_default_hooks(self, hooks=None) -> None:
        """mmengine's default hooks, with a stock ``CheckpointHook`` swapped for
        :class:`~.checkpoint_hook.CrashSafeCheckpointHook` (same arguments)."""
        hooks = dict(hooks or {})
        ckpt = hooks.get('checkpoint', dict(type='CheckpointHook', interval=1))
        if isinstance(ckpt, dict) and \
                ckpt.get('type') in ('CheckpointHook', 'mmengine.CheckpointHook'):
            hooks['checkpoint'] = dict(ckpt, type='CrashSafeCheckpointHook')
        super().register_default_hooks(hooks)

    def _seed_train_workers_per_epoch(self) -> None:
        """Dataloader workers hold generator states a checkpoint cannot capture. Seed them from
        the main process's (checkpointed) generator each epoch instead: new workers per epoch,
        ``worker_init_fn`` = :func:`~.rng_state.seed_worker_from_loader`."""
        loader = self._train_dataloader
        if not isinstance(loader, dict) or not loader.get('num_workers') or \
                'worker_init_fn' in loader:
            return
        loader = dict(loader)
        if loader.get('persistent_workers'):
            self.logger.info('train_dataloader: persistent_workers=False so that each epoch\'s '
                             'workers are seeded from the checkpointed random state '
                             '(exact resume)')
        loader.update(persistent_workers=False,
                      worker_init_fn=dict(type=seed_worker_from_loader, rank=self.rank))
        self._train_dataloader = loader

    # --- saving -------------------------------------------------------------------------------
    def save_checkpoint(self, out_dir, filename, file_client_args=None, save_optimizer=True,
                        save_param_scheduler=True, meta=None, by_epoch=True,
                        backend_args=None):
        """mmengine's checkpoint plus ``meta['rng_states']`` (one entry per rank), written
        atomically. Every rank must call it (the RNG states are gathered); rank 0 writes."""
        meta = dict(meta or {})
        meta['rng_states'] = gather_rng_states()
        if not is_main_process():
            return
        if '://' in str(out_dir):
            raise InputError(f'checkpoint folder "{out_dir}" is not a local path: '
                             f'{type(self).__name__} writes checkpoints atomically on a local '
                             f'(or mounted) file system only')
        with atomic_output(osp.join(out_dir, filename)) as tmp:
            Runner.save_checkpoint.__wrapped__(  # mmengine's writer, into the temporary file
                self, osp.dirname(tmp), osp.basename(tmp), file_client_args, save_optimizer,
                save_param_scheduler, meta, by_epoch, backend_args)

    def dump_config(self) -> None:
        """mmengine's config dump into the work dir, written atomically."""
        name = osp.basename(self.cfg.filename) if self.cfg.filename else f'{self.timestamp}.py'
        text = self.cfg.pretty_text if name.endswith('.py') else self.cfg.dump()
        atomic_write(osp.join(self.work_dir, name), lambda f: f.write(text), mode='w')

    # --- loading ------------------------------------------------------------------------------
    def load_checkpoint(self, filename, map_location='cpu', strict=False,
                        revise_keys=[(r'^module.', '')]):  # noqa: B006  (mmengine's signature)
        """Load model weights with ``weights_only=True``; stop with the list of keys when they do
        not fit the model (``strict_load``, default True), else log the mismatch in one line.
        A distiller's checkpoint given to a plain detector, and a non-strict load that would
        fill less than half of the model, always stop (:mod:`.checkpoint_fit`)."""
        checkpoint = load_checkpoint_safely(filename, mmap=False)
        checkpoint = self._converted_if_release(checkpoint, filename)
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        state = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, dict) else None
        if not isinstance(state, dict):
            raise InputError(f'"{filename}" is not a model checkpoint (no "state_dict")')
        revised = OrderedDict()
        for key, value in state.items():
            for pattern, replacement in revise_keys:
                key = re.sub(pattern, replacement, key)
            revised[key] = value
        model = self.model.module if is_model_wrapper(self.model) else self.model
        problem = distillation_checkpoint_problem(checkpoint, revised, model.state_dict().keys(),
                                                  filename)
        if problem:
            raise InputError(problem)
        self._load_weights(model, revised, filename, strict or self._strict_load)
        self._has_loaded = True
        self.logger.info(f'Loaded checkpoint {filename} (weights_only=True)')
        return checkpoint

    def _converted_if_release(self, checkpoint, filename):
        """A paper's release checkpoint as downloaded (``load_from`` / tools/test.py): converted
        in memory with this config's model (:mod:`mmdet_ksdetr.converters.release`), one log
        line; into a distiller it initialises the student (``architecture.*``), the teacher
        keeps its ``teacher_ckpt`` weights. Anything else is returned as it is."""
        from mmdet_ksdetr.converters.release import convert_checkpoint, is_release_checkpoint
        if not is_release_checkpoint(checkpoint):
            return checkpoint
        if self._resume:
            raise InputError(f'"{filename}" is a release checkpoint (weights only, no training '
                             f'state): resume needs a checkpoint of this run; use load_from')
        model_cfg = self.cfg.model
        student = model_cfg.get('architecture')
        report = []
        converted = convert_checkpoint(checkpoint, cfg=student or model_cfg, report=report)
        self.logger.info(f'load_from: "{filename}" is a {report[0].summary()}; converted in '
                         f'memory for this config')
        if student is not None:
            model = self.model.module if is_model_wrapper(self.model) else self.model
            state = {k: v for k, v in model.state_dict().items()
                     if not k.startswith('architecture.')}
            state.update({f'architecture.{k}': v for k, v in converted['state_dict'].items()})
            converted['state_dict'] = state
        return converted

    def _load_weights(self, model, state, filename, strict) -> None:
        if strict:
            try:
                check_state_dict_fits(model, state, source=f'checkpoint "{filename}"')
            except CheckpointMismatchError as e:
                raise CheckpointMismatchError(f'{e} {_STRICT_HINT}') from None
        else:
            problem = mostly_missing_problem(model, state, filename)
            if problem:
                raise CheckpointMismatchError(problem)
            mismatch = describe_mismatch(model, state)
            if mismatch:
                self.logger.warning(f'non-strict load of "{filename}": {mismatch}')
            own = model.state_dict()
            state = {k: v for k, v in state.items()
                     if k not in own or tuple(v.shape) == tuple(own[k].shape)}
        model.load_state_dict(state, strict=False)

    def load_or_resume(self) -> None:
        """Resume from ``load_from`` (chosen by :meth:`train` for auto-resume) or load it."""
        if self._has_loaded:
            return
        if self._resume and self._load_from is not None:
            self.resume(self._load_from)
        elif self._load_from is not None:
            self.load_checkpoint(self._load_from)

    # --- resuming -----------------------------------------------------------------------------
    def train(self):
        """Pick the checkpoint to resume from and adopt its seed before the train loop (and its
        sampler) is built, then train as mmengine does."""
        if self._resume:
            if self._load_from is None:
                self._load_from = self._pick_auto_resume_checkpoint()
            if self._load_from is not None:
                self._adopt_checkpoint_seed(self._load_from)
        return super().train()

    def _pick_auto_resume_checkpoint(self):
        found = [None, None, None]
        if is_main_process():
            self._remove_partial_saves()
            try:
                path, notes = find_resumable_checkpoint(self.work_dir)
                found = [path, notes, None]
            except NoUsableCheckpointError as e:
                found = [None, None, str(e)]
        if get_world_size() > 1:
            broadcast_object_list(found)
        path, notes, error = found
        if error:
            raise NoUsableCheckpointError(error)
        for note in notes:
            self.logger.warning(f'auto-resume: {note}')
        if path is None:
            self.logger.info(f'auto-resume: no checkpoint in {self.work_dir}, training from '
                             f'scratch')
        else:
            self.logger.info(f'auto-resume: resuming from {path} (the newest checkpoint that '
                             f'loads)')
        return path

    def _remove_partial_saves(self) -> None:
        if not osp.isdir(self.work_dir):
            return
        for path in partial_checkpoint_files(self.work_dir):
            os.unlink(path)
            self.logger.info(f'auto-resume: removed {path}, left by a save that was interrupted')

    def _adopt_checkpoint_seed(self, path) -> None:
        seed = load_checkpoint_safely(path).get('meta', {}).get('seed')
        if seed is not None and seed != self.seed:
            self.logger.info(f'resume: using the run\'s seed {seed} from the checkpoint (the '
                             f'sampler and dataloader must draw as the interrupted run did)')
            self._randomness_cfg.update(seed=seed)
            self.set_randomness(**self._randomness_cfg)

    def resume(self, filename, resume_optimizer=True, resume_param_scheduler=True,
               map_location='default') -> None:
        """mmengine's resume (through :meth:`load_checkpoint`); this rank's generator states
        from the checkpoint are restored once the ``before_train`` hooks ran (see
        :meth:`call_hook`). A checkpoint without them resumes with a warning."""
        super().resume(filename, resume_optimizer, resume_param_scheduler, map_location)
        states = load_checkpoint_safely(filename).get('meta', {}).get('rng_states')
        if not states:
            self.logger.warning(f'"{filename}" holds no random-generator state (saved by an '
                                f'older version): training continues, but resume is not exact')
            return
        if len(states) != self.world_size:
            self.logger.warning(f'"{filename}" was saved by {len(states)} processes, this run '
                                f'has {self.world_size}: resume is not exact')
            return
        self._rng_state_to_restore = states[self.rank]

    def call_hook(self, fn_name: str, **kwargs) -> None:
        """As mmengine; after the ``before_train`` hooks of a resumed run, restore this rank's
        generator states (those hooks drew their numbers before the checkpoint in the
        uninterrupted run, e.g. a check that loads a training sample through the pipeline)."""
        super().call_hook(fn_name, **kwargs)
        if fn_name != 'before_train' or self._rng_state_to_restore is None:
            return
        missing = restore_rng_state(self._rng_state_to_restore)
        self._rng_state_to_restore = None
        if missing:
            self.logger.warning(f'could not restore the {", ".join(missing)} generator state '
                                f'(device count differs): resume is not exact')
        else:
            self.logger.info('restored the random-generator state of every rank: exact resume')
