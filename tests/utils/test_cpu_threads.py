"""Single-process tools: torch threads = half the usable CPUs unless OMP_NUM_THREADS is set."""
import os
import subprocess
import sys

from toy_helpers import ROOT


def _threads_after(env):
    code = ('import torch; from mmdet_ksdetr.engine.build_runner import set_cpu_threads; '
            'print(set_cpu_threads(), torch.get_num_threads())')
    full = {k: v for k, v in os.environ.items() if k != 'OMP_NUM_THREADS'}
    full.update(env)
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         env=full, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_half_the_cpus_without_omp_num_threads():
    want = max(1, len(os.sched_getaffinity(0)) // 2)
    assert _threads_after({}) == [str(want), str(want)]


def test_user_omp_num_threads_is_respected():
    assert _threads_after({'OMP_NUM_THREADS': '1'}) == ['None', '1']
