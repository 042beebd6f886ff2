"""tools/install.sh's build settings (tools/misc/mmcv_build_env.py), checked with fakes: a fake
``torch`` on PYTHONPATH, fake ``nvcc`` toolkits and a fake ``nvidia-smi`` on a PATH holding
nothing else, and throw-away virtual environments (no pip, nothing installed).

``MMDET_KSDETR_SLOW_CUDA_BUILD=1`` adds the real thing: NVIDIA's pip toolkit installed into a
temporary venv compiles mmcv 2.1.0's DETR CUDA sources with the script's environment."""
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import tarfile
import time

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
HELPER = osp.join(ROOT, 'tools', 'misc', 'mmcv_build_env.py')
INSTALL = osp.join(ROOT, 'tools', 'install.sh')


def write_exe(path, text):
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write('#!/bin/sh\n' + text)
    os.chmod(path, 0o755)


def fake_torch(tmp, version, cuda):
    """A folder for PYTHONPATH with a ``torch`` exposing ``__version__`` and ``version.cuda``."""
    pkg = tmp / f'torch-{version}' / 'torch'
    pkg.mkdir(parents=True)
    (pkg / 'version.py').write_text(f'cuda = {cuda!r}\n')
    (pkg / '__init__.py').write_text(f'from . import version\n__version__ = {version!r}\n')
    return str(pkg.parent)


def fake_toolkit(home, release, cudart_so=True):
    """A CUDA toolkit folder: ``bin/nvcc`` reporting ``release``, the runtime header, and
    ``lib/libcudart.so.N`` (plus ``libcudart.so`` if ``cudart_so``, as system toolkits have)."""
    write_exe(f'{home}/bin/nvcc', f'echo "Cuda compilation tools, release {release}, '
                                  f'V{release}.88"\n')
    os.makedirs(f'{home}/include', exist_ok=True)
    open(f'{home}/include/cuda_runtime.h', 'w').close()
    os.makedirs(f'{home}/lib', exist_ok=True)
    major = release.split('.')[0]
    open(f'{home}/lib/libcudart.so.{major}', 'w').close()
    if cudart_so:
        os.symlink(f'libcudart.so.{major}', f'{home}/lib/libcudart.so')
    return str(home)


def fake_gpus(bin_dir, caps):
    write_exe(f'{bin_dir}/nvidia-smi', ''.join(f'echo {c}\n' for c in caps))


@pytest.fixture(scope='module')
def bare_venv(tmp_path_factory):
    """A venv without pip or torch (``python -m venv --without-pip``): torch is missing."""
    path = tmp_path_factory.mktemp('venv') / 'bare'
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(path)], check=True)
    return path


def site_packages(venv):
    out = subprocess.run([f'{venv}/bin/python', '-c',
                          'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def run_env(tmp, torch=None, python=sys.executable, extra_env=None, args=(), cmd=None):
    """Run the helper (or ``cmd``) with only ``tmp/bin`` on PATH; (returncode, settings, stderr)."""
    bin_dir = tmp / 'bin'
    bin_dir.mkdir(exist_ok=True)
    if not (bin_dir / 'dirname').exists():  # the one outside tool install.sh needs here
        os.symlink(shutil.which('dirname'), bin_dir / 'dirname')
    env = {k: v for k, v in os.environ.items()
           if k not in ('CUDA_HOME', 'CUDA_PATH', 'TORCH_CUDA_ARCH_LIST', 'MAX_JOBS',
                        'PYTHONPATH', 'LIBRARY_PATH', 'CPATH', 'TORCH_BUILD')}  # CI sets it
    env['PATH'] = str(bin_dir)
    if torch:
        env['PYTHONPATH'] = torch
    env.update(extra_env or {})
    out = subprocess.run(cmd or [python, HELPER, *args], env=env, capture_output=True,
                         text=True, timeout=120)
    settings = dict(line.split('=', 1) for line in out.stdout.splitlines() if '=' in line)
    return out.returncode, settings, out.stderr


def test_cpu_torch_builds_cpu_ops(tmp_path):
    rc, env, err = run_env(tmp_path, fake_torch(tmp_path, '2.13.0+cpu', None))
    assert rc == 0, err
    assert env['TORCH_ACTION'] == 'keep' and env['TORCH_VERSION'] == '2.13.0+cpu'
    assert env['MMCV_OPS'] == 'cpu' and env['MMCV_WITH_OPS'] == '1'
    assert 'FORCE_CUDA' not in env and 'CUDA_HOME' not in env


def test_cpu_choice_keeps_cpu_ops_with_an_installed_cuda_torch(tmp_path):
    """``--cpu`` on a machine that already has a CUDA torch (a CPU-only CI box handed one):
    mmcv keeps CPU ops instead of installing a toolkit and compiling CUDA ops for hours."""
    rc, env, err = run_env(tmp_path, fake_torch(tmp_path, '2.13.0+cu130', '13.0'),
                           args=('--torch', 'cpu'))
    assert rc == 0, err
    assert env['TORCH_ACTION'] == 'keep' and env['TORCH_CUDA'] == '13.0'
    assert env['MMCV_OPS'] == 'cpu' and 'FORCE_CUDA' not in env and 'CUDA_PIP_SPEC' not in env


def test_matching_system_toolkit_is_reused(tmp_path):
    home = fake_toolkit(tmp_path / 'cuda-13.0', '13.0')
    os.makedirs(tmp_path / 'bin')
    os.symlink(f'{home}/bin/nvcc', tmp_path / 'bin' / 'nvcc')  # nvcc on PATH
    rc, env, err = run_env(tmp_path, fake_torch(tmp_path, '2.13.0+cu130', '13.0'))
    assert rc == 0, err
    assert (env['MMCV_OPS'], env['CUDA_SOURCE'], env['CUDA_HOME']) == ('cuda', 'system', home)
    assert env['FORCE_CUDA'] == '1' and env['CUDA_PIP_SPEC'] == ''
    assert env['CUDART_LINK'] == ''  # a system toolkit has libcudart.so


def test_mismatching_system_toolkit_gives_pip_toolkit(tmp_path):
    home = fake_toolkit(tmp_path / 'cuda-12.4', '12.4')
    rc, env, err = run_env(tmp_path, fake_torch(tmp_path, '2.13.0+cu130', '13.0'),
                           extra_env={'CUDA_HOME': home})
    assert rc == 0, err
    assert env['CUDA_SOURCE'] == 'pip-install'
    assert env['CUDA_PIP_SPEC'] == 'cuda-toolkit[nvcc,cccl]==13.0.*'


def test_no_toolkit_gives_pip_toolkit_of_torch_cuda(tmp_path):
    rc, env, err = run_env(tmp_path, fake_torch(tmp_path, '2.8.0+cu128', '12.8'))
    assert rc == 0, err
    assert env['CUDA_SOURCE'] == 'pip-install' and env['CUDA_HOME'] == ''
    assert env['CUDA_PIP_SPEC'] == 'cuda-toolkit[nvcc,cccl]==12.8.*'


def test_installed_pip_toolkit_is_found_and_libcudart_linked(tmp_path, bare_venv):
    """After `pip install cuda-toolkit[...]`: nvcc under site-packages/nvidia/cu13, a runtime
    with only libcudart.so.13; --run exposes libcudart.so on LIBRARY_PATH in a build-only
    folder that is gone afterwards."""
    venv = tmp_path / 'venv'
    shutil.copytree(bare_venv, venv, symlinks=True)
    home = fake_toolkit(f'{site_packages(venv)}/nvidia/cu13', '13.0', cudart_so=False)
    torch = fake_torch(tmp_path, '2.13.0+cu130', '13.0')
    rc, env, err = run_env(tmp_path, torch, python=f'{venv}/bin/python')
    assert rc == 0, err
    assert (env['CUDA_SOURCE'], env['CUDA_HOME']) == ('pip', home)
    assert env['CUDART_LINK'] == f'{home}/lib/libcudart.so.13'
    probe = ('echo "LIB=$LIBRARY_PATH"; echo "CUDA_HOME=$CUDA_HOME"; '
             'echo "NVCC=$(command -v nvcc)"; echo "ARCH=$TORCH_CUDA_ARCH_LIST"; '
             f'echo "LINK=$({shutil.which("readlink")} "${{LIBRARY_PATH%%:*}}/libcudart.so")"')
    rc, seen, err = run_env(tmp_path, torch, cmd=[f'{venv}/bin/python', HELPER, '--run',
                                                  '/bin/sh', '-c', probe])
    assert rc == 0, err
    assert seen['CUDA_HOME'] == home and seen['NVCC'] == f'{home}/bin/nvcc'
    assert seen['ARCH'] == env['TORCH_CUDA_ARCH_LIST']
    assert seen['LINK'] == env['CUDART_LINK']  # `-lcudart` resolves to the pip runtime
    link_dir = seen['LIB'].split(':')[0]
    assert 'mmcv-build-env-' in link_dir and not osp.exists(link_dir)  # build-only, removed


def test_visible_gpus_give_arch_list(tmp_path):
    fake_gpus(tmp_path / 'bin', ['9.0', '8.0', '9.0'])
    rc, env, err = run_env(tmp_path, fake_torch(tmp_path, '2.13.0+cu130', '13.0'))
    assert rc == 0, err
    assert (env['TORCH_CUDA_ARCH_LIST'], env['ARCH_SOURCE']) == ('8.0;9.0', 'gpu')
    assert env['GPU_ARCHS'] == '8.0;9.0'


def test_no_gpu_gives_default_arch_list(tmp_path):
    rc, env, err = run_env(tmp_path, fake_torch(tmp_path, '2.13.0+cu130', '13.0'))
    assert rc == 0, err
    assert env['ARCH_SOURCE'] == 'default' and env['GPU_ARCHS'] == ''
    archs = [tuple(map(int, re.match(r'(\d+)\.(\d+)', a).groups()))
             for a in env['TORCH_CUDA_ARCH_LIST'].split(';')]
    assert archs and min(archs) >= (7, 5)


def test_user_arch_list_is_respected(tmp_path):
    fake_gpus(tmp_path / 'bin', ['9.0'])
    rc, env, err = run_env(tmp_path, fake_torch(tmp_path, '2.13.0+cu130', '13.0'),
                           extra_env={'TORCH_CUDA_ARCH_LIST': '8.6 8.9+PTX', 'MAX_JOBS': '3'})
    assert rc == 0, err
    assert (env['TORCH_CUDA_ARCH_LIST'], env['ARCH_SOURCE']) == ('8.6 8.9+PTX', 'user')
    assert env['MAX_JOBS'] == '3'


@pytest.mark.parametrize('case', ['old-cuda', 'arch-below-7.5'])
def test_unfixable_setup_is_one_line_error(tmp_path, case):
    if case == 'old-cuda':  # no pip toolkit exists for CUDA 11, and the system one is 12.4
        torch = fake_torch(tmp_path, '2.0.1+cu118', '11.8')
        extra = {'CUDA_HOME': fake_toolkit(tmp_path / 'cuda-12.4', '12.4')}
        what = 'install the CUDA 11.8 toolkit'
    else:  # a V100 (7.0) that nvcc 13 cannot compile for
        torch = fake_torch(tmp_path, '2.13.0+cu130', '13.0')
        fake_gpus(tmp_path / 'bin', ['7.0'])
        extra, what = {}, 'cannot compile for compute capability 7.0'
    rc, env, err = run_env(tmp_path, torch, extra_env=extra)
    assert rc != 0 and env == {}
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('mmcv_build_env: error:') and what in lines[0]
    # install.sh stops with the same line before installing anything
    rc, _, err = run_env(tmp_path, torch, extra_env={'PYTHON': sys.executable, **extra},
                         cmd=['/bin/bash', INSTALL, '--dry-run'])
    assert rc != 0 and lines[0] in err


@pytest.mark.parametrize('gpu', [False, True])
def test_missing_torch_auto_route(tmp_path, bare_venv, gpu):
    """No torch: a CPU machine gets torch+cpu from the CPU index; a GPU machine the PyPI CUDA
    torch and the pip toolkit of its CUDA release; install.sh --dry-run prints the same."""
    if gpu:
        fake_gpus(tmp_path / 'bin', ['9.0'])
    rc, env, err = run_env(tmp_path, python=f'{bare_venv}/bin/python')
    assert rc == 0, err
    assert env['TORCH_ACTION'] == 'install'
    if gpu:
        assert (env['TORCH_SPEC'], env['TORCH_INDEX_URL'], env['TORCH_CUDA']) == \
            ('torch==2.13.0', '', '13.0')
        assert env['CUDA_PIP_SPEC'] == 'cuda-toolkit[nvcc,cccl]==13.0.*'
        assert env['TORCH_CUDA_ARCH_LIST'] == '9.0'
    else:
        assert env['TORCH_SPEC'] == 'torch==2.13.0+cpu'
        assert env['TORCH_INDEX_URL'] == 'https://download.pytorch.org/whl/cpu'
        assert env['MMCV_OPS'] == 'cpu'
    rc, dry, err = run_env(tmp_path, cmd=['/bin/bash', INSTALL, '--dry-run'],
                           extra_env={'PYTHON': f'{bare_venv}/bin/python'})
    assert rc == 0, err
    assert dry == env


def test_cpu_flag_overrides_gpu_for_missing_torch(tmp_path, bare_venv):
    fake_gpus(tmp_path / 'bin', ['9.0'])
    for cmd, extra in ((['--cpu', '--dry-run'], {}), (['--dry-run'], {'TORCH_BUILD': 'cpu'})):
        rc, env, err = run_env(tmp_path, cmd=['/bin/bash', INSTALL, *cmd],
                               extra_env={'PYTHON': f'{bare_venv}/bin/python', **extra})
        assert rc == 0, err
        assert env['TORCH_SPEC'] == 'torch==2.13.0+cpu' and env['MMCV_OPS'] == 'cpu'
    rc, _, err = run_env(tmp_path, cmd=['/bin/bash', INSTALL, '--gpu'])
    assert rc == 2 and "unknown argument '--gpu'" in err


# ----------------------------------------------------------------------------------------
# opt-in: a real CUDA compile with NVIDIA's pip toolkit (downloads ~GBs, minutes per file)
DETR_CUDA_SOURCES = ('ms_deform_attn_cuda.cu', 'focal_loss_cuda.cu', 'nms_cuda.cu')
PROBE_SETUP = '''
import glob, os
from setuptools import setup
from torch.utils.cpp_extension import BuildExtension, CUDAExtension
src = os.path.abspath('mmcv/ops/csrc')
setup(name='detr_ops_probe', ext_modules=[CUDAExtension(
    'detr_ops_probe', sources=[f'{src}/pytorch/cuda/{f}' for f in %r],
    include_dirs=[f'{src}/pytorch', f'{src}/common', f'{src}/common/cuda'],
    define_macros=[('MMCV_WITH_CUDA', None)],
    extra_compile_args={'cxx': ['-std=c++17'], 'nvcc': ['-std=c++17']})],
    cmdclass={'build_ext': BuildExtension})
''' % (DETR_CUDA_SOURCES, )


def log(msg):
    print(f'[slow-cuda-build {time.strftime("%H:%M:%S")}] {msg}', flush=True)


@pytest.mark.skipif(os.environ.get('MMDET_KSDETR_SLOW_CUDA_BUILD') != '1',
                    reason='downloads the CUDA pip toolkit and compiles: set '
                           'MMDET_KSDETR_SLOW_CUDA_BUILD=1')
def test_pip_toolkit_compiles_mmcv_detr_cuda_sources(tmp_path):
    torch = pytest.importorskip('torch')
    if not torch.version.cuda:
        pytest.skip('needs a CUDA build of torch')
    venv = tmp_path / 'venv'  # sees the system torch; gets its own pip toolkit
    subprocess.run([sys.executable, '-m', 'venv', '--system-site-packages', str(venv)],
                   check=True)
    py = f'{venv}/bin/python'
    no_nvcc = [d for d in os.environ['PATH'].split(':') if d and
               not osp.exists(osp.join(d, 'nvcc'))]  # no system toolkit: the pip one is used
    env = {k: v for k, v in os.environ.items()
           if k not in ('CUDA_HOME', 'CUDA_PATH', 'TORCH_BUILD')}
    env.update(PATH=':'.join([f'{venv}/bin'] + no_nvcc), MAX_JOBS='1',
               TORCH_CUDA_ARCH_LIST=os.environ.get('TORCH_CUDA_ARCH_LIST', '9.0'))
    plan = subprocess.run([py, HELPER], env=env, capture_output=True, text=True, check=True)
    spec = dict(line.split('=', 1) for line in plan.stdout.splitlines())['CUDA_PIP_SPEC']
    t0 = time.time()
    subprocess.run([py, '-m', 'pip', 'install', '--progress-bar', 'off', '--ignore-installed',
                    spec], env=env, check=True)
    log(f'pip install {spec}: {time.time() - t0:.0f} s')
    settings = dict(line.split('=', 1) for line in subprocess.run(
        [py, HELPER], env=env, capture_output=True, text=True, check=True).stdout.splitlines())
    log(f'settings: {settings}')
    assert settings['CUDA_SOURCE'] == 'pip' and str(venv) in settings['CUDA_HOME']

    subprocess.run([py, '-m', 'pip', 'download', '--no-deps', '--no-binary', ':all:',
                    'mmcv==2.1.0', '-d', str(tmp_path)], env=env, check=True)
    with tarfile.open(tmp_path / 'mmcv-2.1.0.tar.gz') as tar:
        tar.extractall(tmp_path, filter='data')
    src = tmp_path / 'mmcv-2.1.0'
    (src / 'probe_setup.py').write_text(PROBE_SETUP)
    t0 = time.time()
    out = subprocess.run([py, HELPER, '--run', py, 'probe_setup.py', 'build_ext', '--inplace'],
                         cwd=src, env=env, capture_output=True, text=True)
    log(f'compile + link of {len(DETR_CUDA_SOURCES)} .cu files: {time.time() - t0:.0f} s')
    for ninja_log in (src / 'build').rglob('.ninja_log'):
        for line in ninja_log.read_text().splitlines()[1:]:
            start, end, _, target, _ = line.split('\t')
            log(f'  {osp.basename(target)}: {(int(end) - int(start)) / 1000:.0f} s')
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    so = next(src.glob('detr_ops_probe*.so'))
    symbols = subprocess.run(['nm', '-D', '--defined-only', str(so)], capture_output=True,
                             text=True, check=True).stdout
    for name in ('ms_deform_attn_cuda_forward', 'SigmoidFocalLossForwardCUDAKernelLauncher',
                 'NMSCUDAKernelLauncher'):
        assert name in symbols, name


@pytest.mark.parametrize('local_wheel', [True, False])
def test_cpu_torch_tried_without_the_cpu_index_first(tmp_path, bare_venv, local_wheel):
    """The CPU route asks pip for torch+cpu where it looks anyway (PIP_FIND_LINKS, pip.conf)
    first, and adds the PyTorch CPU index only when that fails: an unreachable index costs pip's
    retries for every package. ``pip`` is a fake that logs its arguments."""
    log = tmp_path / 'pip.log'
    fake_py = tmp_path / 'fakepy' / 'python'
    found = 0 if local_wheel else 1
    write_exe(str(fake_py), f'''if [ "$1" = -m ] && [ "$2" = pip ]; then
  echo "$*" >> {log}
  case "$*" in
    *torch==*extra-index-url*) exit 0 ;;
    *torch==*) exit {found} ;;
  esac
  exit 97  # stop install.sh at the step after torch
fi
exec {bare_venv}/bin/python "$@"
''')
    rc, _, err = run_env(tmp_path, cmd=['/bin/bash', INSTALL, '--cpu'],
                         extra_env={'PYTHON': str(fake_py)})
    assert rc == 97, err
    calls = [line for line in log.read_text().splitlines() if 'torch==' in line]
    first = 'pip install --progress-bar off torch==2.13.0+cpu'
    if local_wheel:
        assert calls == [f'-m {first}']
    else:
        assert calls == [f'-m {first}',
                         f'-m {first} --extra-index-url https://download.pytorch.org/whl/cpu']
