"""mmdet_ksdetr: KS-DETR, DAC-DETR and DETR distillation for MMDetection 3.x."""
import os
import os.path as osp
import re
import shutil
import sys

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))
# Shipped inside the package under mmdet_ksdetr/.mim/ (as OpenMMLab packages do), so that
# `mmdet_ksdetr::<config>` paths, `mim search / train / test mmdet_ksdetr` and the tools work
# from a plain `pip install`.
MIM_ITEMS = ('configs', 'tools', 'model-index.yml')
EDITABLE_COMMANDS = ('develop', 'editable_wheel')


def read_version():
    with open(osp.join(HERE, 'mmdet_ksdetr', 'version.py')) as f:
        return re.search(r"__version__ = '([^']+)'", f.read()).group(1)


def read_requirements(name):
    lines = []
    with open(osp.join(HERE, 'requirements', name)) as f:
        for line in f:
            line = line.split('#')[0].strip()
            if line:
                lines.append(line)
    return lines


def stage_mim_files():
    """Fill ``mmdet_ksdetr/.mim`` with the configs, the tools and ``model-index.yml``: links to
    the checkout for an editable install (edits show at once), copies for a wheel or sdist."""
    mim_dir = osp.join(HERE, 'mmdet_ksdetr', '.mim')
    os.makedirs(mim_dir, exist_ok=True)
    link = any(cmd in sys.argv for cmd in EDITABLE_COMMANDS)
    for item in MIM_ITEMS:
        src, dst = osp.join(HERE, item), osp.join(mim_dir, item)
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if link:
            os.symlink(osp.relpath(src, mim_dir), dst)
        elif osp.isdir(src):
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
        else:
            shutil.copyfile(src, dst)


def mim_package_data():
    """Every file under ``mmdet_ksdetr/.mim`` (following the editable links), relative to the
    package: explicit, because older setuptools do not expand ``**`` in package_data."""
    pkg = osp.join(HERE, 'mmdet_ksdetr')
    files = []
    for dirpath, dirnames, filenames in os.walk(osp.join(pkg, '.mim'), followlinks=True):
        dirnames[:] = [d for d in dirnames if d != '__pycache__']
        files += [osp.relpath(osp.join(dirpath, f), pkg) for f in filenames
                  if not f.endswith('.pyc')]
    return sorted(files)


if any(cmd in sys.argv for cmd in ('bdist_wheel', 'sdist', 'install', 'build', 'build_py',
                                   'egg_info') + EDITABLE_COMMANDS):
    stage_mim_files()

setup(
    name='mmdet_ksdetr',
    version=read_version(),
    description='KS-DETR, DAC-DETR and MMRazor DETR distillers for MMDetection 3.x',
    long_description=open(osp.join(HERE, 'README.md')).read(),
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('tests', 'tests.*', 'configs', 'tools')),
    package_data={'mmdet_ksdetr': mim_package_data()},
    license='Apache-2.0',
    python_requires='>=3.11',
    # mmcv==2.1.0 (compiled ops) and torch are installed by tools/install.sh, not pip's resolver:
    # a resolver-driven torch install would pull a multi-GB CUDA build over a user's torch.
    install_requires=read_requirements('runtime.txt'),
    extras_require={'tests': read_requirements('tests.txt'),
                    'deploy': ['onnx>=1.16', 'onnxruntime>=1.17']},  # docs/deploy.md
    zip_safe=False,
)
