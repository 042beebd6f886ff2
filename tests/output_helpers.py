"""Helpers for tests of tools that load untrusted checkpoints and write output files: hostile
pickles, runs without write permission or with a full disk, ``kill -9`` during a write."""
import ctypes
import os
import os.path as osp
import resource
import signal
import subprocess
import sys
import time

from toy_helpers import ROOT

PR_CAPBSET_DROP = 24  # linux/prctl.h
CAP_DAC_OVERRIDE = 1  # linux/capability.h


class _Call:
    """Pickles as ``func(*args)``: what a hostile checkpoint does to run code on load."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


class Trojan:
    """A custom class whose unpickling (``__setstate__``) writes a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __setstate__(self, state):
        open(state['marker'], 'w').close()


def hostile_payloads(marker):
    """``{global the file names: object}``; unpickling any of them creates ``marker``."""
    import builtins
    return {
        'posix.system': _Call(os.system, f'touch {marker}'),
        'subprocess.Popen': _Call(subprocess.Popen, ['touch', marker]),
        'builtins.eval': _Call(builtins.eval, f'open({marker!r}, "w").close()'),
        f'{Trojan.__module__}.Trojan': Trojan(marker),
    }


def _tool_env(env=None):
    full_env = dict(os.environ)
    full_env.setdefault('OMP_NUM_THREADS', '1')
    full_env.update(env or {})
    return full_env


def run_limited(args, preexec_fn, env=None, timeout=600):
    """:func:`toy_helpers.run_tool` with a ``preexec_fn`` (limits set in the child)."""
    return subprocess.run(args, cwd=ROOT, env=_tool_env(env), capture_output=True, text=True,
                          timeout=timeout, preexec_fn=preexec_fn)


def _can_drop_capabilities():
    """Whether this process may drop capabilities (CAP_SETPCAP, bit 8 of CapEff)."""
    with open('/proc/self/status') as f:
        eff = next((ln.split()[1] for ln in f if ln.startswith('CapEff:')), '0')
    return bool(int(eff, 16) & (1 << 8))


def without_write_permission():
    """``preexec_fn`` under which the folder permission bits apply also to root: drops
    ``CAP_DAC_OVERRIDE`` from the bounding set, so the exec'd tool never holds it. ``None``
    when not root (the bits apply anyway)."""
    if os.geteuid() != 0:
        return None
    if not _can_drop_capabilities():
        import pytest
        pytest.skip('running as root without CAP_SETPCAP: cannot drop CAP_DAC_OVERRIDE, so a '
                    'read-only folder stays writable for the tool')

    def drop():
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_CAPBSET_DROP, CAP_DAC_OVERRIDE, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), 'prctl(PR_CAPBSET_DROP, CAP_DAC_OVERRIDE)')

    return drop


def with_file_size_limit(nbytes):
    """``preexec_fn`` that makes every write past ``nbytes`` fail with ``EFBIG`` (what a full
    disk looks like to a writer; ``SIGXFSZ`` ignored so the write returns the error)."""

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))

    return limit


def _snapshot(folder, out):
    try:
        st = os.stat(out)
        out_id = (st.st_ino, st.st_size, st.st_mtime_ns)
    except FileNotFoundError:
        out_id = None
    return set(os.listdir(folder)), out_id


def kill_during_write(args, out, timeout=300):
    """Start the tool, SIGKILL it the moment it starts writing ``out`` (a new file appears
    beside it, or ``out`` itself changes), and return its exit code (``-SIGKILL`` if killed)."""
    folder = osp.dirname(osp.abspath(out))
    before = _snapshot(folder, out)
    proc = subprocess.Popen(args, cwd=ROOT, env=_tool_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            names, out_id = _snapshot(folder, out)
            if names != before[0] or out_id != before[1]:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.001)
    finally:
        if proc.poll() is None and time.monotonic() >= deadline:
            proc.kill()
        proc.wait()
    if proc.returncode != -signal.SIGKILL:
        sys.stderr.write(proc.stderr.read().decode(errors='replace'))
    proc.stderr.close()
    return proc.returncode


def assert_one_line_error(res, tool, *fragments):
    """The tool failed with exactly one line ``<tool>: error: ...`` holding ``fragments``."""
    lines = res.stderr.strip().splitlines()
    assert res.returncode != 0 and len(lines) == 1, res.stderr
    assert lines[0].startswith(f'{tool}: error: '), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def temp_files(folder):
    """Temporary files an atomic write leaves beside its output (``.<name>.*.tmp``)."""
    return sorted(n for n in os.listdir(folder) if n.startswith('.') and n.endswith('.tmp'))


def run_analysis_tool_in_process(path, argv):
    """``python <path> *argv`` for an analysis tool (``tools/analysis_tools/*.py`` whose
    ``__main__`` is ``run_main(TOOL, main)``), run in this process to spare the interpreter
    start-up: the tool's ``main(argv)`` under the same ``run_main`` (bad input -> one stderr
    line, exit 2). Returns a CompletedProcess with the exit code, stdout and stderr."""
    import contextlib
    import importlib.util
    import io

    from mmdet_ksdetr.analysis.common import run_main
    path = path if osp.isabs(path) else osp.join(ROOT, path)
    spec = importlib.util.spec_from_file_location(
        '_tool_' + osp.splitext(osp.basename(path))[0], path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out, err, code = io.StringIO(), io.StringIO(), 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            run_main(tool.TOOL, lambda: tool.main(list(argv)))
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    return subprocess.CompletedProcess([path] + list(argv), code, out.getvalue(), err.getvalue())
