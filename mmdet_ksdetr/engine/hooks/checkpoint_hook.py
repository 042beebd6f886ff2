"""A CheckpointHook whose files survive a crash at any moment.

Differences from mmengine's ``CheckpointHook`` (same arguments, same file names):

* ``last_checkpoint`` is written atomically (a crash never leaves it empty or half-written);
* with ``max_keep_ckpts``, an outdated checkpoint is deleted only *after* the new one is
  complete on disk, so a crash during a save always leaves the previous good checkpoint;
* the same for ``save_best``: the previous ``best_*`` checkpoint is deleted only after the new
  best one is saved (mmengine deletes it first);
* validation does not consume the training random streams: the generators are put back as they
  were before validation, so a run resumed from a checkpoint draws exactly what the uninterrupted
  run drew (the checkpoint is saved before validation runs).

The checkpoint file itself is written atomically by :class:`~.runner.CrashSafeRunner`.
"""
import os.path as osp
from typing import List

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook
from mmengine.registry import HOOKS

from mmdet_ksdetr.utils.checkpoint_io import atomic_write
from mmdet_ksdetr.engine.auto_resume import last_checkpoint_text
from mmdet_ksdetr.engine.rng_state import capture_rng_state, restore_rng_state


@HOOKS.register_module()
class CrashSafeCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` with atomic ``last_checkpoint``, delete-after-save
    rotation (periodic and best checkpoints) and validation that leaves the training random
    streams untouched."""

    _rng_before_val = None

    def before_val_epoch(self, runner) -> None:
        """Remember the generator states: validation must not shift the training streams."""
        self._rng_before_val = capture_rng_state()

    def after_val_epoch(self, runner, metrics) -> None:
        """Put the generators back, then save the best checkpoint as mmengine does."""
        if self._rng_before_val is not None:
            restore_rng_state(self._rng_before_val)
            self._rng_before_val = None
        super().after_val_epoch(runner, metrics)

    def _best_paths(self):
        """The current best-checkpoint path per key indicator (key ``None`` for the single
        indicator, whose name ``'auto'`` becomes the first metric's on the first save)."""
        if len(self.key_indicators) == 1:
            return {None: self.best_ckpt_path}
        return dict(self.best_ckpt_path_dict)

    def _set_best_paths(self, paths) -> None:
        if len(self.key_indicators) == 1:
            self.best_ckpt_path = paths[None]
        else:
            self.best_ckpt_path_dict.update(paths)

    def _save_best_checkpoint(self, runner, metrics) -> None:
        """mmengine's best-checkpoint save, with the previous best file deleted only after the
        new one is on disk: mmengine is shown no previous path (so it deletes nothing), and
        the indicators that got a new best then have their old file removed here."""
        if not self.save_best:
            return super()._save_best_checkpoint(runner, metrics)
        previous = self._best_paths()
        self._set_best_paths({key: None for key in previous})
        try:
            super()._save_best_checkpoint(runner, metrics)
        finally:
            current = self._best_paths()
            # an indicator without a new best keeps its previous path
            self._set_best_paths({key: current[key] or previous[key] for key in previous})
        if not is_main_process():
            return
        for key, old in previous.items():
            if old and current[key] and current[key] != old and self.file_backend.isfile(old):
                self.file_backend.remove(old)
                runner.logger.info(f'The previous best checkpoint {old} is removed')

    def _outdated_checkpoints(self, runner, step) -> List[str]:
        """Update the kept-step list for a save at ``step``; return the files it drops."""
        if self.max_keep_ckpts <= 0 or (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            return []
        dropped = []
        if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
            dropped.append(self.file_backend.join_path(
                self.out_dir, self.filename_tmpl.format(self.keep_ckpt_ids.popleft())))
        self.keep_ckpt_ids.append(step)
        runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
        return dropped

    def _save_checkpoint_with_step(self, runner, step, meta):
        outdated = self._outdated_checkpoints(runner, step)
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir, filename, self.file_client_args, save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler, meta=meta, by_epoch=self.by_epoch,
            backend_args=self.backend_args, **self.args)
        if not is_main_process():
            return
        text = last_checkpoint_text(runner.work_dir, self.last_ckpt)  # relative: copyable dir
        atomic_write(osp.join(runner.work_dir, 'last_checkpoint'), lambda f: f.write(text),
                     mode='w')
        for path in outdated:
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
