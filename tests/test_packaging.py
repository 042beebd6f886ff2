"""Packaging as an OpenMMLab project: the built wheel carries the configs, the tools and the
model index under ``mmdet_ksdetr/.mim``, so that after a plain ``pip install`` of it
``mmdet_ksdetr::`` config paths, ``mim search`` and ``mim train`` work.

The wheel is built from a copy of the tracked files (building in the checkout would replace an
editable install's links with copies) and installed with ``--no-deps`` into a fresh venv that
reuses the dependencies installed where the tests run (see :func:`_venv_seeing_this_env`)."""
import os
import os.path as osp
import shutil
import site
import subprocess
import sys

import pytest
from toy_helpers import ROOT, toy_data_cfg_options

TOY_DEFORMABLE = 'toy/deformable-detr_tiny-r18_1xb2-12e_toy.py'


def _run(args, cwd=None, env=None, timeout=900):
    full_env = dict(os.environ, OMP_NUM_THREADS='1', PIP_NO_INDEX='1')
    full_env.pop('PYTHONPATH', None)
    full_env.update(env or {})
    out = subprocess.run(args, cwd=cwd, env=full_env, capture_output=True, text=True,
                         timeout=timeout)
    assert out.returncode == 0, f'{args} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}'
    return out


def test_in_tree_package_config_path():
    """``mmdet_ksdetr::<dir>/<config>`` resolves in this (editable or source) install too."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(ROOT, 'configs', TOY_DEFORMABLE))
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        user_cfg = osp.join(tmp, 'user_cfg.py')
        with open(user_cfg, 'w') as f:
            f.write(f"_base_ = 'mmdet_ksdetr::{TOY_DEFORMABLE}'\nmodel = dict(num_queries=7)\n")
        user = Config.fromfile(user_cfg)
    assert user.model.type == cfg.model.type
    assert user.model.num_queries == 7 and cfg.model.num_queries != 7


def _venv_seeing_this_env(venv):
    """Create ``venv`` whose imports fall back on this interpreter's site-packages.

    ``python -m venv --system-site-packages`` would show the *base* interpreter's packages: run
    from inside a venv (the README's install) that is not where torch and mmdet are. Instead the
    new venv gets a ``.pth`` file naming the site-packages folders of the running environment (a
    venv's own, a conda env's, or a system Python's dist-packages). They come after the venv's own
    site-packages, and as plain path lines their ``.pth`` files are not run, so an editable
    install of this package there is not seen: the wheel installed into the venv is."""
    dirs = list(site.getsitepackages())
    if site.ENABLE_USER_SITE and osp.isdir(site.getusersitepackages()):
        dirs.append(site.getusersitepackages())
    _run([sys.executable, '-m', 'venv', '--without-pip', str(venv)])
    py = str(venv / 'bin' / 'python')
    own = _run([py, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])']
               ).stdout.strip()
    with open(osp.join(own, '_outer_env.pth'), 'w') as f:
        f.write(''.join(d + '\n' for d in dirs if osp.isdir(d)))
    return py


@pytest.fixture(scope='module')
def wheel_venv(tmp_path_factory):
    """A fresh venv that sees this environment's packages, with the built wheel installed."""
    tmp = tmp_path_factory.mktemp('pkg')
    src = tmp / 'src'
    files = subprocess.run(['git', 'ls-files', '-co', '--exclude-standard'], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    for rel in files:
        if osp.isfile(osp.join(ROOT, rel)):
            os.makedirs(osp.dirname(src / rel), exist_ok=True)
            shutil.copy2(osp.join(ROOT, rel), src / rel)
    _run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q',
          '-w', str(tmp / 'dist'), str(src)])
    wheels = os.listdir(tmp / 'dist')
    assert len(wheels) == 1 and wheels[0].startswith('mmdet_ksdetr-'), wheels
    venv = tmp / 'venv'
    py = _venv_seeing_this_env(venv)
    # pip (and mim) come from this environment; --ignore-installed: this environment's own
    # install of mmdet_ksdetr is neither taken for the wheel nor uninstalled
    _run([py, '-m', 'pip', 'install', '-q', '--no-deps', '--ignore-installed',
          str(tmp / 'dist' / wheels[0])])
    return venv


def test_wheel_ships_configs_tools_and_index(wheel_venv):
    py = str(wheel_venv / 'bin' / 'python')
    out = _run([py, '-c', 'import mmdet_ksdetr, os.path as p; '
                'print(p.dirname(mmdet_ksdetr.__file__))'], cwd='/')
    pkg = out.stdout.strip()
    assert pkg.startswith(str(wheel_venv)), pkg  # the wheel's copy, not the checkout
    for rel in ('.mim/model-index.yml', '.mim/tools/train.py', '.mim/tools/test.py',
                f'.mim/configs/{TOY_DEFORMABLE}', '.mim/configs/_base_/toy_tiny.py'):
        assert osp.isfile(osp.join(pkg, rel)), rel


def test_wheel_package_config_path(wheel_venv, tmp_path):
    user_cfg = tmp_path / 'user_cfg.py'
    user_cfg.write_text(f"_base_ = 'mmdet_ksdetr::{TOY_DEFORMABLE}'\n")
    py = str(wheel_venv / 'bin' / 'python')
    out = _run([py, '-c', 'import sys, mmdet_ksdetr; from mmengine.config import Config; '
                'cfg = Config.fromfile(sys.argv[1]); print(cfg.model.type)', str(user_cfg)],
               cwd=str(tmp_path))
    assert out.stdout.strip().endswith('DeformableDETR')


def test_mim_search_lists_the_model_index(wheel_venv):
    mim = shutil.which('mim', path=str(wheel_venv / 'bin')) or shutil.which('mim')
    if mim is None:
        pytest.fail('openmim is not installed: it is in requirements/tests.txt')
    out = _run([str(wheel_venv / 'bin' / 'python'), '-m', 'mim', 'search', 'mmdet_ksdetr'],
               cwd='/')
    text = out.stdout
    assert 'ks-dab-detr_r50_8xb2-50e_coco' in text, text[-2000:]
    assert 'dac-detr-cdn-ice_r50_8xb2-12e_coco' in text


def test_mim_train_toy_config(wheel_venv, toy_data_root, tmp_path):
    work = tmp_path / 'work'
    cfg_name = osp.basename(TOY_DEFORMABLE)
    args = [str(wheel_venv / 'bin' / 'python'), '-m', 'mim', 'train', 'mmdet_ksdetr', cfg_name,
            '--work-dir', str(work), '--cfg-options', 'train_cfg.max_epochs=1',
            'train_cfg.val_interval=1', 'train_dataloader.batch_size=4'
            ] + toy_data_cfg_options(toy_data_root)
    _run(args, cwd=str(tmp_path), timeout=900)
    assert osp.isfile(work / 'epoch_1.pth'), os.listdir(work)


def test_model_index_lists_every_config():
    """Every shipped config outside ``_base_`` and ``toy`` is in a metafile that
    ``model-index.yml`` imports, and every listed config exists."""
    import yaml
    with open(osp.join(ROOT, 'model-index.yml')) as f:
        index = yaml.safe_load(f)
    listed = set()
    for meta in index['Import']:
        with open(osp.join(ROOT, meta)) as f:
            models = yaml.safe_load(f)['Models']
        for m in models:
            if m['Config'].startswith('mmdet::'):
                # a released checkpoint of a plain mmdet detector: mmdet ships the config
                assert 'Converted From' in m, m['Name']
                import mmdet
                assert osp.isfile(osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs',
                                           m['Config'][len('mmdet::'):])), m['Config']
                continue
            assert osp.isfile(osp.join(ROOT, m['Config'])), m['Config']
            if 'Converted From' not in m:
                # a trainable config is listed under its own name (what `mim train` takes);
                # a released checkpoint may point at a config shared with other entries
                assert m['Name'] == osp.splitext(osp.basename(m['Config']))[0], m['Name']
            listed.add(m['Config'])
    names = [m['Name'] for meta in index['Import']
             for m in yaml.safe_load(open(osp.join(ROOT, meta)))['Models']]
    assert len(names) == len(set(names)), sorted({n for n in names if names.count(n) > 1})
    shipped = set()
    for dirpath, _, files in os.walk(osp.join(ROOT, 'configs')):
        rel = osp.relpath(dirpath, ROOT)
        if rel.split(os.sep)[1:2] in (['_base_'], ['toy']):
            continue
        shipped |= {osp.join(rel, f) for f in files if f.endswith('.py')}
    assert shipped == listed, sorted(shipped ^ listed)
