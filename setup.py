"""mmdet_ksdetr: KS-DETR, DAC-DETR and DETR distillation for MMDetection 3.x."""
import os.path as osp
import re

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


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


setup(
    name='mmdet_ksdetr',
    version=read_version(),
    description='KS-DETR, DAC-DETR and MMRazor DETR distillers for MMDetection 3.x',
    long_description=open(osp.join(HERE, 'README.md')).read(),
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('tests', 'tests.*', 'configs', 'tools')),
    python_requires='>=3.8',
    # mmcv==2.1.0 (compiled ops) and torch are installed by tools/install.sh, not pip's resolver:
    # a resolver-driven torch install would pull a multi-GB CUDA build over a user's torch.
    install_requires=read_requirements('runtime.txt'),
    extras_require={'tests': read_requirements('tests.txt')},
    zip_safe=False,
)
