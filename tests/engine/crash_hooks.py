"""Test-only hooks that SIGKILL their own training process at a chosen moment, loaded by the
runner tests through ``custom_imports`` (this folder on PYTHONPATH). Without their environment
variables they do nothing and draw no random numbers.

* ``KSDETR_TEST_KILL_AT_ITER=N``: kill right after training iteration N (1-based, global).
* ``KSDETR_TEST_KILL_IN_SAVE=N``: at the N-th checkpoint save, add 64 MB of padding to the
  checkpoint and kill the process as soon as the temporary checkpoint file holds data, i.e.
  while it is being written.
"""
import glob
import os
import os.path as osp
import signal
import threading
import time

import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


def _kill_self():
    os.kill(os.getpid(), signal.SIGKILL)


def _kill_when_written(folder):
    while True:
        for tmp in glob.glob(osp.join(folder, '.*.pth.*.tmp')):
            if osp.getsize(tmp) > 0:
                _kill_self()
        time.sleep(0.0005)


@HOOKS.register_module()
class KillAtIterHook(Hook):
    """SIGKILL after iteration ``$KSDETR_TEST_KILL_AT_ITER`` (rank 0 only; torchrun then stops
    the other ranks)."""

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        at = os.environ.get('KSDETR_TEST_KILL_AT_ITER')
        if at and is_main_process() and runner.iter + 1 == int(at):
            _kill_self()


@HOOKS.register_module()
class KillInSaveHook(Hook):
    """SIGKILL while the ``$KSDETR_TEST_KILL_IN_SAVE``-th checkpoint file is being written."""

    saves = 0

    def before_save_checkpoint(self, runner, checkpoint):
        self.saves += 1
        at = os.environ.get('KSDETR_TEST_KILL_IN_SAVE')
        if at and self.saves == int(at):
            checkpoint['padding'] = torch.zeros(16 * 2**20)  # 64 MB: the write takes a while
            threading.Thread(target=_kill_when_written, args=(runner.work_dir, ),
                             daemon=True).start()
