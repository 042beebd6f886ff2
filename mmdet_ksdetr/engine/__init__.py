"""Training engine: :class:`CrashSafeRunner` (atomic checkpoints, crash-tolerant auto-resume,
exact resume, strict ``weights_only`` loading), its :class:`CrashSafeCheckpointHook`, and the
hooks in :mod:`.hooks` (:class:`DivergenceHook`)."""
from . import hooks  # noqa: F401  (registers the hooks)
from .auto_resume import NoUsableCheckpointError, find_resumable_checkpoint
from .checkpoint_hook import CrashSafeCheckpointHook
from .rng_state import capture_rng_state, gather_rng_states, restore_rng_state
from .runner import CrashSafeRunner

__all__ = ['CrashSafeRunner', 'CrashSafeCheckpointHook', 'NoUsableCheckpointError',
           'find_resumable_checkpoint', 'capture_rng_state', 'gather_rng_states',
           'restore_rng_state']
