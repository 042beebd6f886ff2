"""tools/train.py and tools/test.py where a user stumbles: Ctrl-C and rerunning a command whose
work dir holds checkpoints; test.py given a distiller's checkpoint with the student config;
the folder of ``--show-dir`` drawings."""
import glob
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import pytest
import torch
from toy_helpers import (CONFIGS, ROOT, TOOLS, load_toy_config, run_tool,
                         save_random_checkpoint, toy_data_cfg_options)

DEFORMABLE = 'toy/deformable-detr_tiny-r18_1xb2-12e_toy.py'
DISTILL = 'toy/detr_distill/detr-distill_deformable-detr_tiny-r18_1xb2-12e_toy.py'
STUDENT = 'configs/toy/deformable-detr_tiny-r18-student_1xb2-12e_toy.py'


def _train_cmd(work, data_root):
    # epochs of one iteration each, more than any machine finishes before the test interrupts
    # it (50 epochs ran to the end on a loaded machine before the test saw the first checkpoint)
    return [sys.executable, osp.join(TOOLS, 'train.py'), osp.join(CONFIGS, DEFORMABLE),
            '--work-dir', str(work), '--cfg-options', 'train_cfg.max_epochs=100000',
            'train_cfg.val_interval=100', 'train_dataloader.dataset.indices=2',
            *toy_data_cfg_options(data_root)]


def _default_sigint():
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def start():
    """``start(cmd, stdout_path)``: a training process, killed at the end of the test if the
    test failed before interrupting it (it would otherwise train on)."""
    procs = []

    def _start(cmd, stdout_path):
        env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=ROOT)
        # Ctrl-C as a user's terminal sends it: a pytest-xdist worker ignores SIGINT, and an
        # ignored signal stays ignored in its children (train.py would never see the Ctrl-C)
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=open(stdout_path, 'w'),
                                      stderr=subprocess.PIPE, text=True,
                                      preexec_fn=_default_sigint))
        return procs[-1]

    yield _start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _interrupt(proc):
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    return proc.returncode, err


def test_ctrl_c_names_the_checkpoint_and_a_rerun_says_how_to_resume(
        toy_data_root, tmp_path, start):
    work = tmp_path / 'work'
    cmd = _train_cmd(work, toy_data_root)
    proc = start(cmd, tmp_path / 'out1.txt')
    deadline = time.time() + 600
    while not glob.glob(str(work / 'epoch_*.pth')) and proc.poll() is None:
        assert time.time() < deadline, 'no checkpoint after 600 s'
        time.sleep(0.5)
    assert proc.poll() is None, proc.stderr.read()[-3000:]
    code, err = _interrupt(proc)
    assert code == 130, err[-3000:]
    assert 'Traceback' not in err and 'KeyboardInterrupt' not in err, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith('train.py: interrupted (Ctrl-C); last checkpoint: '), last
    named = last.split('last checkpoint: ')[1].split('. Resume with: ')[0]
    assert osp.isfile(named) and osp.dirname(named) == str(work), last
    assert last.endswith('--resume'), last

    # the same command again: it starts from scratch (as mmdet) but first says how to resume
    proc = start(cmd, tmp_path / 'out2.txt')
    note = ''
    for line in proc.stderr:
        if line.startswith('train.py: note: '):
            note = line.strip()
            break
    code, _ = _interrupt(proc)
    assert note, 'no note about the checkpoints already in the work dir'
    assert f'{work} already holds checkpoints (newest: {work}/epoch_' in note, note
    assert 'starts from scratch' in note and note.endswith('--resume'), note
    assert code == 130


def _distill_checkpoint(path):
    """A checkpoint as a distillation run saves it: student under ``architecture.``, teacher
    under ``teacher.``, the run's name in ``meta``."""
    from mmengine.registry import init_default_scope
    from mmrazor.registry import MODELS
    init_default_scope('mmdet')
    cfg = load_toy_config(DISTILL)
    cfg.model.teacher_ckpt = None
    torch.manual_seed(0)
    algo = MODELS.build(cfg.model)
    meta = dict(epoch=12, cfg=cfg.pretty_text,
                experiment_name=osp.basename(DISTILL)[:-3] + '_20260101_120000')
    torch.save(dict(meta=meta, state_dict=algo.state_dict()), path)
    return path


def test_distillation_checkpoint_with_student_config(toy_data_root, tmp_path):
    """Strict or --non-strict: one line saying to run pth_transfer.py, naming the student
    config; never an evaluation of a random student."""
    ckpt = _distill_checkpoint(str(tmp_path / 'distill.pth'))
    for extra in ([], ['--non-strict']):
        res = run_tool([sys.executable, osp.join(TOOLS, 'test.py'), osp.join(ROOT, STUDENT),
                        ckpt, '--work-dir', str(tmp_path / 'w'), *extra, '--cfg-options',
                        'test_dataloader.dataset.indices=1',
                        *toy_data_cfg_options(toy_data_root)])
        log = res.stdout + res.stderr
        assert res.returncode != 0, log[-3000:]
        last = log.strip().splitlines()[-1]
        assert last.startswith('test.py: error: ') and 'is a distillation checkpoint' in last
        assert 'tools/pth_transfer.py' in last and STUDENT in last, last
        assert 'coco/bbox_mAP' not in log and 'Traceback' not in log, log[-3000:]


def test_show_dir_prints_the_absolute_folder(toy_data_root, tmp_path):
    ckpt = save_random_checkpoint(DEFORMABLE, str(tmp_path / 'random.pth'))
    work = tmp_path / 'work'
    res = run_tool([sys.executable, osp.join(TOOLS, 'test.py'), osp.join(CONFIGS, DEFORMABLE),
                    ckpt, '--work-dir', str(work), '--show-dir', 'show', '--cfg-options',
                    'test_dataloader.dataset.indices=1', *toy_data_cfg_options(toy_data_root)],
                   cwd=str(tmp_path))
    assert res.returncode == 0, res.stderr[-3000:]
    last = res.stdout.strip().splitlines()[-1]
    assert last.startswith('test.py: drawings saved in '), last
    folder = last[len('test.py: drawings saved in '):]
    (stamp, ) = [d for d in os.listdir(work) if osp.isdir(work / d)]
    assert folder == str(work / stamp / 'show'), folder
    assert len(os.listdir(folder)) == 1
