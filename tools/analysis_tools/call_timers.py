"""Per-call timers for the benchmark tools (profiling processes only, not the library).

:meth:`CallTimers.wrap` replaces an attribute (a method of one object, or a module's function)
with a timed wrapper for the rest of the process: acceptable in a throw-away benchmark process,
never done by ``mmdet_ksdetr`` itself.
"""
import time
from collections import defaultdict

from mmdet_ksdetr.utils.benchmark import sync


class CallTimers:
    """Accumulates, per name, the time (``clock``) spent in wrapped callables while
    :attr:`active` is true. :meth:`wrap` replaces the attribute for the rest of the process
    (benchmark processes only; nothing restores it)."""

    def __init__(self, device, clock=time.perf_counter):
        self.device = device
        self.clock = clock
        self.totals = defaultdict(float)
        self.active = False

    def wrap(self, obj, attr, name):
        """Time every call of ``obj.<attr>`` (an instance's method or a module's function)
        under ``name``."""
        fn = getattr(obj, attr)

        def timed(*a, **k):
            if not self.active:
                return fn(*a, **k)
            sync(self.device)
            start = self.clock()
            out = fn(*a, **k)
            sync(self.device)
            self.totals[name] += self.clock() - start
            return out

        setattr(obj, attr, timed)
