"""Compute how tools/install.sh installs torch and builds mmcv 2.1.0; print it as KEY=VALUE.

This is the one place where the install decides:

* torch, when it is missing: ``auto`` (the default) takes the CUDA build from PyPI when
  ``nvidia-smi`` sees a GPU and the CPU build otherwise (a CPU machine then skips about
  4.6 GB of CUDA packages); ``cpu`` / ``cuda`` force one. ``TORCH_INDEX_URL`` (the PyTorch CPU
  index) is the fallback install.sh asks only when pip finds ``TORCH_SPEC`` nowhere else.
* mmcv's ops: CPU only for a CPU torch; for a CUDA torch, CPU + CUDA ops compiled with an nvcc
  whose major version matches ``torch.version.cuda``: a system toolkit (``$CUDA_HOME`` /
  ``$CUDA_PATH`` or ``nvcc`` on ``PATH``) when it matches, else NVIDIA's pip toolkit
  ``cuda-toolkit[nvcc,cccl]==<major>.<minor>.*`` in this environment (no system toolkit
  needed), and ``TORCH_CUDA_ARCH_LIST`` from the user, else the visible GPUs, else
  :data:`DEFAULT_ARCHS`.

``python tools/misc/mmcv_build_env.py [--torch auto|cpu|cuda]`` prints one ``KEY=VALUE`` line
per setting (values never quoted; empty means unset) and exits 0; ``... --run CMD ARGS`` runs
CMD in that build environment (what tools/install.sh compiles mmcv with). A setup it cannot
fix gives one line ``mmcv_build_env: error: <what to install>`` on stderr and exit 1.
"""
import argparse
import glob
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import sysconfig

TORCH_SPEC = 'torch==2.13.0'
CPU_INDEX = 'https://download.pytorch.org/whl/cpu'
# CUDA release of the torch==2.13.0 wheel on PyPI (what `pip install torch==2.13.0` gives).
PYPI_TORCH_CUDA = '13.0'
# Architectures compiled when no GPU is visible and TORCH_CUDA_ARCH_LIST is unset: Turing to
# Hopper, plus PTX of the newest so later GPUs (Blackwell) JIT-compile it. nvcc 13 cannot
# target anything below 7.5, and torch 2.13's CUDA 13 wheels do not run there either.
DEFAULT_ARCHS = '7.5;8.0;8.6;8.9;9.0+PTX'
MIN_ARCH_CUDA13 = (7, 5)
# NVIDIA publishes the nvcc/cccl toolkit on PyPI (package `cuda-toolkit`) from CUDA 12.2 on.
MIN_PIP_TOOLKIT = (12, 2)


class EnvError(RuntimeError):
    """A setup this script cannot fix; the message says what to install."""


def run(cmd):
    """stdout of ``cmd`` (a list), or None when it is missing or fails."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def major_minor(text):
    """(major, minor) of the first ``N.M`` in ``text``; None if there is none."""
    m = re.search(r'(\d+)\.(\d+)', text or '')
    return (int(m.group(1)), int(m.group(2))) if m else None


def nvcc_version(nvcc):
    """(major, minor) that ``nvcc --version`` reports (``release 13.0``); None if it fails."""
    out = run([nvcc, '--version'])
    m = re.search(r'release (\d+)\.(\d+)', out or '')
    return (int(m.group(1)), int(m.group(2))) if m else None


def gpu_archs():
    """Compute capabilities of the visible GPUs (``['9.0']``), sorted, no duplicates."""
    out = run(['nvidia-smi', '--query-gpu=compute_cap', '--format=csv,noheader'])
    caps = {line.strip() for line in (out or '').splitlines()}
    return sorted((c for c in caps if major_minor(c)), key=major_minor)


def installed_torch():
    """(version, cuda release or None) of the importable torch; None if torch is missing."""
    import warnings
    try:
        with warnings.catch_warnings():  # e.g. "Failed to initialize NumPy" before numpy is in
            warnings.simplefilter('ignore')
            import torch
    except ImportError:
        return None
    return str(torch.__version__), getattr(torch.version, 'cuda', None)


def torch_plan(choice, gpus):
    """Settings for a missing torch: which build to install and from where."""
    if choice == 'auto':
        choice = 'cuda' if gpus else 'cpu'
    if choice == 'cpu':
        return dict(TORCH_ACTION='install', TORCH_SPEC=f'{TORCH_SPEC}+cpu',
                    TORCH_INDEX_URL=CPU_INDEX), None
    return dict(TORCH_ACTION='install', TORCH_SPEC=TORCH_SPEC, TORCH_INDEX_URL=''), \
        PYPI_TORCH_CUDA


def site_dirs():
    """site-packages folders of this interpreter: its own (where a pip toolkit lands) first,
    then those it sees on sys.path (a venv with --system-site-packages)."""
    paths = sysconfig.get_paths()
    seen = [paths['purelib'], paths['platlib']]
    seen += [p for p in sys.path if osp.basename(p) in ('site-packages', 'dist-packages')]
    return [p for p in dict.fromkeys(seen) if p and osp.isdir(p)]


def system_toolkits():
    """Candidate system toolkits: ``$CUDA_HOME``, ``$CUDA_PATH``, then the folder above the
    ``bin/`` of nvcc on PATH (followed through symlinks); each must hold ``bin/nvcc`` and
    ``include/cuda_runtime.h``."""
    homes = [os.environ.get(k) for k in ('CUDA_HOME', 'CUDA_PATH')]
    nvcc = shutil.which('nvcc')
    if nvcc:
        homes += [osp.dirname(osp.dirname(p)) for p in (nvcc, osp.realpath(nvcc))]
    return [h for h in dict.fromkeys(homes) if h and osp.isfile(osp.join(h, 'bin', 'nvcc'))
            and osp.isfile(osp.join(h, 'include', 'cuda_runtime.h'))]


def pip_toolkits():
    """Toolkits NVIDIA's pip packages put in this environment (``nvidia/cu13/bin/nvcc``)."""
    return sorted({osp.dirname(osp.dirname(p)) for d in site_dirs()
                   for p in glob.glob(osp.join(d, 'nvidia', '*', 'bin', 'nvcc'))})


def find_toolkit(want):
    """(source, CUDA_HOME) of a toolkit whose nvcc major equals ``want[0]``; (None, None)."""
    for source, homes in (('system', system_toolkits()), ('pip', pip_toolkits())):
        for home in homes:
            version = nvcc_version(osp.join(home, 'bin', 'nvcc'))
            if version and version[0] == want[0]:
                return source, home
    return None, None


def arch_list(cuda, gpus):
    """(TORCH_CUDA_ARCH_LIST, where it came from); rejects what this nvcc cannot build."""
    user = os.environ.get('TORCH_CUDA_ARCH_LIST', '').strip()
    archs, source = (user, 'user') if user else \
        (';'.join(gpus), 'gpu') if gpus else (DEFAULT_ARCHS, 'default')
    if cuda[0] >= 13:
        low = [a for a in re.split(r'[;\s]+', archs)
               if major_minor(a) and major_minor(a) < MIN_ARCH_CUDA13]
        if low:
            raise EnvError(
                f'CUDA {cuda[0]}.{cuda[1]} cannot compile for compute capability '
                f'{", ".join(low)} ({source} TORCH_CUDA_ARCH_LIST={archs}): install torch built '
                f'for CUDA 12.x, or set TORCH_CUDA_ARCH_LIST to architectures >= 7.5')
    return archs, source


def cudart_link(home, major):
    """The ``libcudart.so.<major>`` to expose as ``libcudart.so`` for the link, or '' when the
    toolkit's own lib folder already has ``libcudart.so`` (pip runtimes ship only ``.so.N``)."""
    own = [osp.join(home, d) for d in ('lib64', 'lib')]
    if any(osp.exists(osp.join(d, 'libcudart.so')) for d in own):
        return ''
    others = [p for d in site_dirs() for p in sorted(glob.glob(osp.join(d, 'nvidia', '*', 'lib')))]
    for lib in own + others:
        found = sorted(glob.glob(osp.join(lib, f'libcudart.so.{major}*')))
        if found:
            return found[0]
    return ''


def cuda_plan(cuda_text, gpus):
    """Settings that build mmcv's CUDA ops against a torch built for CUDA ``cuda_text``."""
    cuda = major_minor(cuda_text)
    source, home = find_toolkit(cuda)
    env = dict(MMCV_OPS='cuda', FORCE_CUDA='1', MMCV_WITH_OPS='1', CUDA_SOURCE=source,
               CUDA_HOME=home or '', CUDA_PIP_SPEC='')
    if source is None:
        if cuda < MIN_PIP_TOOLKIT:
            raise EnvError(
                f'torch is built for CUDA {cuda_text} and no nvcc {cuda[0]}.x was found: install '
                f'the CUDA {cuda_text} toolkit and set CUDA_HOME to it, or install torch '
                f'built for CUDA >= 12.2 (e.g. pip install {TORCH_SPEC})')
        env['CUDA_SOURCE'] = 'pip-install'
        env['CUDA_PIP_SPEC'] = f'cuda-toolkit[nvcc,cccl]=={cuda[0]}.{cuda[1]}.*'
    env['TORCH_CUDA_ARCH_LIST'], env['ARCH_SOURCE'] = arch_list(cuda, gpus)
    env['CUDART_LINK'] = cudart_link(home, cuda[0]) if home else ''
    env['CPATH'] = extra_includes(home) if source == 'pip' else ''
    return env


def extra_includes(home):
    """Header folders of the other NVIDIA pip packages, ':'-joined: torch's CUDA headers
    include cuSPARSE/cuBLAS/cuSOLVER headers, which the toolkit's own ``include/`` holds only
    when those packages were installed into the same folder (CUDA 12 wheels split even the
    runtime across packages)."""
    own = osp.realpath(osp.join(home, 'include'))
    found = [p for d in site_dirs()
             for p in sorted(glob.glob(osp.join(d, 'nvidia', '*', 'include')))]
    return ':'.join(p for p in dict.fromkeys(found) if osp.realpath(p) != own)


def compute(choice):
    """All settings, in print order. ``choice='cpu'`` asks for CPU ops also when the installed
    torch is a CUDA build (e.g. a CPU-only CI machine that was handed a CUDA torch)."""
    gpus = gpu_archs()
    env = dict(GPU_ARCHS=';'.join(gpus))
    torch = installed_torch()
    if torch is None:
        plan, cuda = torch_plan(choice, gpus)
        env.update(plan, TORCH_CUDA=cuda or '')
    else:
        env.update(TORCH_ACTION='keep', TORCH_VERSION=torch[0], TORCH_CUDA=torch[1] or '')
    if env['TORCH_CUDA'] and choice != 'cpu':
        env.update(cuda_plan(env['TORCH_CUDA'], gpus))
    else:
        env.update(MMCV_OPS='cpu', MMCV_WITH_OPS='1')
    env['MAX_JOBS'] = os.environ.get('MAX_JOBS') or str(os.cpu_count() or 1)
    return env


BUILD_KEYS = ('MMCV_WITH_OPS', 'MAX_JOBS', 'FORCE_CUDA', 'CUDA_HOME', 'TORCH_CUDA_ARCH_LIST')


def build_environ(env, link_dir):
    """``os.environ`` for compiling mmcv with the settings ``env``; for a pip runtime that
    ships only ``libcudart.so.N``, a ``libcudart.so`` symlink is made in ``link_dir`` (a
    build-only folder) and put first on ``LIBRARY_PATH``."""
    out = dict(os.environ)
    out.update({k: env[k] for k in BUILD_KEYS if env.get(k)})
    if env['MMCV_OPS'] != 'cuda':
        return out
    if env['CUDA_SOURCE'] == 'pip-install':
        raise EnvError(f'no nvcc {env["TORCH_CUDA"]} yet: pip install "{env["CUDA_PIP_SPEC"]}"')
    out['PATH'] = os.pathsep.join([osp.join(env['CUDA_HOME'], 'bin'), out.get('PATH', '')])
    if env['CUDART_LINK']:
        os.symlink(env['CUDART_LINK'], osp.join(link_dir, 'libcudart.so'))
    extra = (('CPATH', env['CPATH']), ('LIBRARY_PATH', link_dir if env['CUDART_LINK'] else ''))
    for key, value in extra:
        if value:
            out[key] = os.pathsep.join(p for p in (value, out.get(key)) if p)
    return out


def run_build(env, cmd):
    """Run ``cmd`` (e.g. pip install mmcv) in the build environment of ``env``; its exit code."""
    import tempfile
    with tempfile.TemporaryDirectory(prefix='mmcv-build-env-') as link_dir:
        environ = build_environ(env, link_dir)
        return subprocess.run(cmd, env=environ).returncode


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--torch', choices=('auto', 'cpu', 'cuda'), default='auto',
                        help='which torch build to install when torch is missing')
    parser.add_argument('--run', nargs=argparse.REMAINDER, metavar='CMD',
                        help='run CMD in the computed build environment instead of printing')
    args = parser.parse_args(argv)
    try:
        env = compute(args.torch)
        if args.run:
            sys.exit(run_build(env, args.run))
    except EnvError as e:
        sys.exit(f'mmcv_build_env: error: {e}')
    print('\n'.join(f'{k}={v}' for k, v in env.items()))


if __name__ == '__main__':
    main()
