"""Training engine: :class:`CrashSafeRunner` (atomic checkpoints, crash-tolerant auto-resume,
exact resume, strict ``weights_only`` loading), its :class:`CrashSafeCheckpointHook`, and the
hooks in :mod:`.hooks` (:class:`DivergenceHook`)."""
from mmdet_ksdetr.engine import hooks  # noqa: F401  (registers the hooks)
from mmdet_ksdetr.engine.auto_resume import (NoUsableCheckpointError, find_resumable_checkpoint,
                                             newest_checkpoint)
from mmdet_ksdetr.engine.build_runner import build_runner, shutdown_distributed
from mmdet_ksdetr.engine.hooks import CrashSafeCheckpointHook
from mmdet_ksdetr.engine.rng_state import capture_rng_state, gather_rng_states, restore_rng_state
from mmdet_ksdetr.engine.runner import CrashSafeRunner

__all__ = ['CrashSafeRunner', 'CrashSafeCheckpointHook', 'NoUsableCheckpointError',
           'find_resumable_checkpoint', 'newest_checkpoint', 'capture_rng_state',
           'gather_rng_states',
           'restore_rng_state', 'build_runner', 'shutdown_distributed']
