"""What a user does with the installed package: a config of their own inheriting one of ours
(``_base_ = 'mmdet_ksdetr::toy/...'``) trains with tools/train.py; after the editable install
of tools/install.sh, ``mim search mmdet_ksdetr`` and ``mim train mmdet_ksdetr <config>`` work;
a training's console stays short (the start-up dumps go to the log file) and a config mistake
is one line, not one line after the config dump."""
import glob
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest
from toy_helpers import ROOT, TOOLS, run_tool, toy_data_cfg_options

PLAIN = 'toy/detr_tiny-r18_1xb2-12e_toy.py'
KS = 'toy/ks_detr/ks-dab-detr_tiny-r18_1xb2-12e_toy.py'
# one epoch of one iteration (2 images, batch 2), validation (after the last epoch) on 2 images
ONE_ITER = ['train_cfg.max_epochs=1', 'train_cfg.val_interval=100',
            'train_dataloader.dataset.indices=2', 'val_dataloader.dataset.indices=2']


def _user_config(folder, base, body=''):
    path = osp.join(str(folder), 'my_config.py')
    with open(path, 'w') as f:
        f.write(f"_base_ = 'mmdet_ksdetr::{base}'\n{body}")
    return path


def _train(cfg, work, data_root, *extra, cwd=None):
    return run_tool([sys.executable, osp.join(TOOLS, 'train.py'), cfg, '--work-dir', str(work),
                     *extra, '--cfg-options', *ONE_ITER, *toy_data_cfg_options(data_root)],
                    cwd=cwd or ROOT)


@pytest.mark.parametrize('base', [PLAIN, KS], ids=['plain', 'ks'])
def test_user_config_inheriting_package_config_trains(base, toy_data_root, tmp_path):
    """``mmdet_ksdetr::`` scopes everything the base brings in to ``mmdet_ksdetr``: that scope
    must find mmdet's datasets / hooks and this package's hooks (KSCheckTrainGTHook)."""
    cfg = _user_config(tmp_path, base,
                       'model = dict(num_queries=12, test_cfg=dict(max_per_img=12))\n')
    res = _train(cfg, tmp_path / 'work', toy_data_root, cwd=str(tmp_path))
    log = res.stdout + res.stderr
    assert res.returncode == 0, log[-3000:]
    assert osp.isfile(tmp_path / 'work' / 'epoch_1.pth'), log[-3000:]
    assert "_scope_='mmdet_ksdetr'" in open(tmp_path / 'work' / 'my_config.py').read()
    # item 6: the environment / config / hook-order dumps are in the log file, not the console
    assert 'Config:' not in log and 'System environment:' not in log, log[:3000]
    assert 'paramwise_options' not in log and 'Hooks will be executed' not in log
    assert len(log.splitlines()) < 150, len(log.splitlines())
    (log_file, ) = glob.glob(str(tmp_path / 'work' / '*' / '*.log'))
    text = open(log_file).read()
    assert 'Config:' in text and 'System environment:' in text and 'paramwise_options' in text


def test_verbose_prints_the_dumps_and_errors_come_without_them(toy_data_root, tmp_path):
    """--verbose brings the dumps back on the console; without it a config mistake found while
    the runner builds the model is the console's last line, with no config dump before it."""
    cfg = _user_config(tmp_path, PLAIN, "model = dict(type='NoSuchDETR')\n")
    quiet = _train(cfg, tmp_path / 'w1', toy_data_root)
    verbose = _train(cfg, tmp_path / 'w2', toy_data_root, '--verbose')
    log = quiet.stdout + quiet.stderr
    assert quiet.returncode != 0
    assert log.strip().splitlines()[-1].startswith('train.py: error: type="NoSuchDETR"'), log
    assert 'Config:' not in log and len(log.splitlines()) < 20, log
    vlog = verbose.stdout + verbose.stderr
    assert verbose.returncode != 0 and 'Config:' in vlog and 'System environment:' in vlog


# --- mim on an editable install ----------------------------------------------------------------
def _site_packages(python):
    return subprocess.run([python, '-c', 'import sysconfig; print(sysconfig.get_paths()'
                           '["purelib"])'], capture_output=True, text=True,
                          check=True).stdout.strip()


def _run(args, cwd, timeout=900):
    env = dict(os.environ, OMP_NUM_THREADS='1', PIP_NO_INDEX='1')
    env.pop('PYTHONPATH', None)
    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=timeout)
    assert out.returncode == 0, f'{args} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}'
    return out


@pytest.fixture(scope='module')
def editable_venv(tmp_path_factory):
    """A new venv with this checkout (a copy of its tracked files) installed as tools/install.sh
    does (``pip install -e``, then the link step); the dependencies come from the test's own
    environment through a path entry (its editable install's .pth is not processed)."""
    tmp = tmp_path_factory.mktemp('editable')
    src = tmp / 'src'
    files = subprocess.run(['git', 'ls-files', '-co', '--exclude-standard'], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    for rel in files:
        if osp.isfile(osp.join(ROOT, rel)):
            os.makedirs(osp.dirname(src / rel), exist_ok=True)
            shutil.copy2(osp.join(ROOT, rel), src / rel)
    venv = tmp / 'venv'
    _run([sys.executable, '-m', 'venv', '--without-pip', str(venv)], cwd=str(tmp))
    py = str(venv / 'bin' / 'python')
    with open(osp.join(_site_packages(py), 'deps_of_the_test_env.pth'), 'w') as f:
        f.write(_site_packages(sys.executable) + '\n')
    _run([py, '-m', 'pip', 'install', '-q', '--no-deps', '--no-build-isolation', '--use-pep517',
          '-e', str(src)],
         cwd=str(tmp))
    info = json.loads(open(glob.glob(osp.join(_site_packages(py), 'mmdet_ksdetr-*.dist-info',
                                              'direct_url.json'))[0]).read())
    assert info['dir_info']['editable'], info
    _run([py, str(src / 'tools' / 'misc' / 'link_editable_install.py')], cwd=str(tmp))
    return py, src


def test_editable_install_imports_the_checkout(editable_venv, tmp_path):
    py, src = editable_venv
    out = _run([py, '-c', 'import os.path as p, mmdet_ksdetr; '
                'print(p.realpath(mmdet_ksdetr.__file__))'], cwd=str(tmp_path))
    assert out.stdout.strip() == osp.realpath(src / 'mmdet_ksdetr' / '__init__.py')


def test_mim_search_on_editable_install(editable_venv, tmp_path):
    py, _ = editable_venv
    out = _run([py, '-m', 'mim', 'search', 'mmdet_ksdetr'], cwd=str(tmp_path))
    assert 'ks-dab-detr_r50_8xb2-50e_coco' in out.stdout, out.stdout[-2000:]


def test_mim_train_on_editable_install(editable_venv, toy_data_root, tmp_path):
    py, _ = editable_venv
    work = tmp_path / 'work'
    _run([py, '-m', 'mim', 'train', 'mmdet_ksdetr', osp.basename(PLAIN), '--work-dir',
          str(work), '--cfg-options', *ONE_ITER, *toy_data_cfg_options(toy_data_root)],
         cwd=str(tmp_path))
    assert osp.isfile(work / 'epoch_1.pth'), os.listdir(work)
