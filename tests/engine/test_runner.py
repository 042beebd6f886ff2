"""CrashSafeRunner through the real tools: kill -9 during a checkpoint save and mid-training,
auto-resume past broken files, bit-exact resume (1 and 2 processes, flip + dropout + DINO
denoising on), weights_only loading of hostile files, strict / --non-strict checkpoint fit.

Each training run is a real ``tools/train.py`` process on an 8-image toy set, 2 epochs.
Runs that do not depend on each other go in parallel (one thread per process).
"""
import glob
import json
import os
import os.path as osp
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from toy_helpers import CONFIGS, ROOT, TOOLS, free_port, run_tool, slow

from mmdet_ksdetr.engine.auto_resume import resume_problem
from mmdet_ksdetr.utils.checks import load_checkpoint_safely

HERE = osp.dirname(osp.abspath(__file__))
# configs under test, relative to configs/ (kept here: the toy configs may move)
TOY = {
    'deformable': 'toy/deformable-detr_tiny-r18_1xb2-12e_toy.py',
    'ks': 'toy/ks_detr/ks-deformable-detr_tiny-r18_1xb2-12e_toy.py',
    'dino': 'toy/dac_detr/dac-dino-cdn-ice-4scale_tiny-r18_1xb2-12e_toy.py',
    'distill': 'toy/detr_distill/detr-distill_deformable-detr_tiny-r18_1xb2-12e_toy.py',
    'dab': 'toy/dab-detr_tiny-r18_1xb2-12e_toy.py',
}
# load_checkpoint_safely's refusal of a pickle that names a global outside the allow-list
REFUSED = ('refused: the file would run code (posix.system)', )


@pytest.fixture(scope='module')
def tiny_toy(tmp_path_factory):
    """8 train / 2 val toy images: 4 iterations per epoch in 1 process, 2 in 2 processes."""
    sys.path.insert(0, osp.join(ROOT, 'tools', 'misc'))
    from make_toy_coco import make_toy_coco
    root = str(tmp_path_factory.mktemp('tiny') / 'toy_coco')
    make_toy_coco(root, num_train=8, num_val=2, seed=0)
    return root + '/'


def data_opts(root):
    ann = osp.join(root, 'annotations', 'instances_val.json')
    return ([f'{d}.dataset.data_root={root}'
             for d in ('train_dataloader', 'val_dataloader', 'test_dataloader')] +
            [f'{e}.ann_file={ann}' for e in ('val_evaluator', 'test_evaluator')])


def wrapped_config(tmp_path, name):
    """The toy config plus the test-only kill hooks (tests/engine/crash_hooks.py)."""
    from mmengine.config import Config
    base = osp.join(CONFIGS, TOY[name])
    hooks = [dict(h) for h in Config.fromfile(base).get('custom_hooks', [])]
    hooks += [dict(type='KillAtIterHook'), dict(type='KillInSaveHook')]
    path = tmp_path / f'{name}_with_kill_hooks.py'
    path.write_text(f'_base_ = {base!r}\n'
                    f"custom_imports = dict(imports=['mmdet_ksdetr', 'crash_hooks'], "
                    f'allow_failed_imports=False)\n'
                    f'custom_hooks = {hooks!r}\n')
    return str(path)


def train_cmd(cfg, work, *args, procs=1):
    """``tools/train.py`` (1 process) or ``tools/dist_train.sh CFG procs`` command."""
    if procs == 1:
        tool = [sys.executable, osp.join(TOOLS, 'train.py'), cfg]
    else:
        tool = ['bash', osp.join(TOOLS, 'dist_train.sh'), cfg, str(procs)]
    return tool + ['--work-dir', str(work), *args]


def run_parallel(*jobs):
    """Run ``(cmd, extra_env)`` jobs at once; their CompletedProcess results in order."""
    base_env = dict(PYTHONPATH=os.pathsep.join([ROOT, HERE]), OMP_NUM_THREADS='1')

    def one(job):
        cmd, env = job
        return run_tool(cmd, env=dict(base_env, PORT=str(free_port()), **env))

    with ThreadPoolExecutor(len(jobs)) as pool:
        return list(pool.map(one, jobs))


def log_of(out):
    return out.stdout + out.stderr


def logged_losses(work):
    """``{step: {loss name: value}}`` over every run in ``work`` (a later run's record of a
    step replaces an earlier one, as a resumed run redoes the killed part)."""
    losses = {}
    for path in sorted(glob.glob(osp.join(str(work), '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            for line in f:
                rec = json.loads(line)
                if 'loss' in rec:
                    losses[rec['step']] = {k: v for k, v in rec.items() if 'loss' in k}
    return losses


def assert_same_run(full, resumed, max_epochs=2):
    """Same weights bit for bit and the same logged losses at every step."""
    a = load_checkpoint_safely(osp.join(str(full), f'epoch_{max_epochs}.pth'))['state_dict']
    b = load_checkpoint_safely(osp.join(str(resumed), f'epoch_{max_epochs}.pth'))['state_dict']
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f'{len(differ)} tensors differ, e.g. {differ[:3]}'
    la, lb = logged_losses(full), logged_losses(resumed)
    assert la and la == lb, {s: (la.get(s), lb.get(s)) for s in set(la) | set(lb)
                             if la.get(s) != lb.get(s)}


def base_opts(root, *extra):
    return ['--cfg-options', 'train_cfg.max_epochs=2', 'default_hooks.logger.interval=1',
            *data_opts(root), *extra]


def test_kill_during_save_then_auto_resume_past_broken_files(tiny_toy, tmp_path):
    """kill -9 while epoch_2.pth is written: no file under the final name, epoch_1.pth and
    last_checkpoint intact. Auto-resume then skips an empty last_checkpoint and a truncated
    epoch_2.pth and gives the uninterrupted run exactly (val after each epoch, 1 dataloader
    worker). An old-style checkpoint without RNG state resumes, with a warning, not exactly."""
    cfg = wrapped_config(tmp_path, 'deformable')
    full, killed, old = tmp_path / 'full', tmp_path / 'killed', tmp_path / 'old'
    opts = base_opts(tiny_toy, 'train_cfg.val_interval=1', 'train_dataloader.num_workers=1',
                     'randomness.seed=3')
    out_full, out_kill = run_parallel((train_cmd(cfg, full, *opts), {}),
                                      (train_cmd(cfg, killed, *opts),
                                       dict(KSDETR_TEST_KILL_IN_SAVE='2')))
    assert out_full.returncode == 0, log_of(out_full)[-3000:]
    assert out_kill.returncode == -9, log_of(out_kill)[-3000:]
    names = os.listdir(killed)
    assert 'epoch_1.pth' in names and 'epoch_2.pth' not in names, names
    partial = glob.glob(str(killed / '.epoch_2.pth.*.tmp'))
    assert len(partial) == 1 and 0 < osp.getsize(partial[0]) < osp.getsize(
        full / 'epoch_2.pth'), partial  # the kill did hit the write
    assert (killed / 'last_checkpoint').read_text() == 'epoch_1.pth'  # relative to the dir
    assert resume_problem(str(killed / 'epoch_1.pth')) is None

    # an older checkpoint (no RNG state) in its own work dir
    old.mkdir()
    ckpt = load_checkpoint_safely(str(killed / 'epoch_1.pth'), mmap=False)
    del ckpt['meta']['rng_states']
    torch.save(ckpt, str(old / 'epoch_1.pth'))
    # what a non-atomic writer could have left: empty marker, truncated newest checkpoint
    (killed / 'last_checkpoint').write_text('')
    with open(killed / 'epoch_1.pth', 'rb') as f:
        (killed / 'epoch_2.pth').write_bytes(f.read()[:100_000])

    resume = base_opts(tiny_toy, 'train_cfg.val_interval=1', 'train_dataloader.num_workers=1')
    out_res, out_old = run_parallel((train_cmd(cfg, killed, '--resume', *resume), {}),
                                    (train_cmd(cfg, old, '--resume', *resume), {}))
    log = log_of(out_res)
    assert out_res.returncode == 0, log[-3000:]
    assert f'auto-resume: "{killed}/last_checkpoint" is empty' in log
    assert f'auto-resume: skipped "{killed}/epoch_2.pth" is not a PyTorch checkpoint' in log
    assert f'auto-resume: resuming from {killed}/epoch_1.pth' in log
    assert f'auto-resume: removed {partial[0]}' in log and not osp.exists(partial[0])
    assert 'restored the random-generator state of every rank: exact resume' in log
    assert_same_run(full, killed)

    log = log_of(out_old)
    assert out_old.returncode == 0, log[-3000:]
    assert 'holds no random-generator state' in log and 'resume is not exact' in log
    # the RNG state is what makes it exact: without it epoch 2 draws other flips / dropout
    assert logged_losses(old)[8] != logged_losses(full)[8]


@pytest.mark.parametrize('name,procs,kill_at', [
    ('deformable', 2, 3),  # tools/dist_train.sh ... 2 (gloo): 2 iterations per epoch
    pytest.param('ks', 1, 6, marks=slow('resume of a KS run (the mechanism: deformable, dino)')),
    ('dino', 1, 5),  # DINO denoising queries: the random state is restored
    pytest.param('distill', 1, 7,
                 marks=slow('resume of a distillation run (the mechanism: deformable, dino)')),
])
def test_kill_mid_training_and_resume_is_exact(tiny_toy, tmp_path, name, procs, kill_at):
    """kill -9 after iteration ``kill_at`` (epoch 2), ``--resume``: the same weights and the
    same logged losses as the uninterrupted run. The resumed run gets no seed option: it must
    take the run's seed from the checkpoint."""
    if procs > 1 and torch.cuda.is_available():
        pytest.skip('CPU gloo workflow')
    cfg = wrapped_config(tmp_path, name)
    full, killed = tmp_path / 'full', tmp_path / 'killed'
    extra = ['model.teacher_ckpt=None'] if name == 'distill' else []
    opts = base_opts(tiny_toy, 'train_cfg.val_interval=5', *extra)
    seeded = opts + ['randomness.seed=11']
    out_full, out_kill = run_parallel(
        (train_cmd(cfg, full, *seeded, procs=procs), {}),
        (train_cmd(cfg, killed, *seeded, procs=procs), dict(KSDETR_TEST_KILL_AT_ITER=str(kill_at))))
    assert out_full.returncode == 0, log_of(out_full)[-3000:]
    assert out_kill.returncode != 0 and not osp.exists(killed / 'epoch_2.pth')
    out, = run_parallel((train_cmd(cfg, killed, '--resume', *opts, procs=procs), {}))
    log = log_of(out)
    assert out.returncode == 0, log[-3000:]
    assert f'resuming from {killed}/epoch_1.pth' in log
    assert 'restored the random-generator state of every rank' in log  # rank 0 logs
    assert_same_run(full, killed)


class _Hostile:
    """Unpickling runs ``touch MARKER``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


def test_hostile_checkpoint_never_runs(tiny_toy, tmp_path):
    """A checkpoint whose unpickling would run a shell command, through load_from, --resume
    CKPT, auto-resume and test.py, with TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1: the command never
    runs, each tool exits non-zero with the loader's message."""
    marker = tmp_path / 'pwned'
    evil = tmp_path / 'auto' / 'epoch_1.pth'
    evil.parent.mkdir()
    torch.save(dict(meta=dict(epoch=1, iter=4), state_dict=dict(w=torch.zeros(1)),
                    payload=_Hostile(marker)), str(evil))
    cfg = osp.join(CONFIGS, TOY['deformable'])
    opts = base_opts(tiny_toy)
    env = dict(TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD='1')
    outs = run_parallel(
        (train_cmd(cfg, tmp_path / 'w1', *opts, f'load_from={evil}'), env),
        (train_cmd(cfg, tmp_path / 'w2', '--resume', str(evil), *opts), env),
        (train_cmd(cfg, evil.parent, '--resume', *opts), env),
        ([sys.executable, osp.join(TOOLS, 'test.py'), cfg, str(evil), '--work-dir',
          str(tmp_path / 'w4'), '--cfg-options', *data_opts(tiny_toy)], env))
    for out in outs:
        log = log_of(out)
        assert out.returncode != 0, log[-3000:]
        assert f'"{evil}"' in log and any(r in log for r in REFUSED), log[-3000:]
    assert 'cannot resume: none of the 1 checkpoint(s)' in log_of(outs[2])
    assert not marker.exists()


def test_wrong_architecture_checkpoint(tiny_toy, tmp_path):
    """test.py with a DAB-DETR checkpoint on the Deformable DETR config stops and names keys;
    --non-strict does not run it either (it would fill less than half of the model); with
    --non-strict a checkpoint that misses only the head runs and logs the mismatch in one
    line."""
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    model = MODELS.build(Config.fromfile(osp.join(CONFIGS, TOY['dab'])).model)
    ckpt = tmp_path / 'dab.pth'
    torch.save(dict(meta=dict(epoch=1), state_dict=model.state_dict()), str(ckpt))
    own = MODELS.build(Config.fromfile(osp.join(CONFIGS, TOY['deformable'])).model)
    headless = tmp_path / 'headless.pth'
    torch.save(dict(meta=dict(epoch=1), state_dict={
        k: v for k, v in own.state_dict().items() if not k.startswith('bbox_head.')}),
        str(headless))
    cmd = [sys.executable, osp.join(TOOLS, 'test.py'), osp.join(CONFIGS, TOY['deformable']),
           str(ckpt), '--work-dir', str(tmp_path / 'w'), '--cfg-options', *data_opts(tiny_toy)]
    loose_cmd = cmd[:4] + ['--non-strict'] + cmd[4:]
    strict, loose, partial = run_parallel(
        (cmd, {}), (loose_cmd, {}), (loose_cmd[:3] + [str(headless)] + loose_cmd[4:], {}))
    log = log_of(strict)
    assert strict.returncode != 0, log[-3000:]
    for part in ('does not fit the model (DeformableDETR)', 'missing keys: ',
                 'unexpected keys: ', '--non-strict'):
        assert part in log, log[-3000:]
    log = log_of(loose)
    assert loose.returncode != 0, log[-3000:]
    assert 'fills only' in log and 'mostly random model' in log, log[-3000:]
    assert 'coco/bbox_mAP' not in log
    log = log_of(partial)
    assert partial.returncode == 0, log[-3000:]
    assert 'non-strict load of' in log and 'missing keys: ' in log
    assert 'coco/bbox_mAP' in log


def test_checkpoint_with_empty_history_buffer_loads(tiny_toy, tmp_path):
    """A checkpoint the runner saved while its message hub holds an empty HistoryBuffer (a
    scalar registered but not updated yet) loads with weights_only=True."""
    from mmengine.logging import HistoryBuffer

    from mmdet_ksdetr.engine import CrashSafeRunner
    from toy_helpers import load_toy_config
    cfg = load_toy_config(TOY['deformable'], tiny_toy, work_dir=str(tmp_path))
    runner = CrashSafeRunner.from_cfg(cfg)
    runner.message_hub.load_state_dict(dict(
        log_scalars={'train/not_yet_logged': HistoryBuffer()}, runtime_info={},
        resumed_keys={'train/not_yet_logged': True}))
    runner.save_checkpoint(str(tmp_path), 'hub.pth', save_optimizer=False,
                           save_param_scheduler=False)
    ckpt = load_checkpoint_safely(str(tmp_path / 'hub.pth'))
    hub = ckpt['message_hub']['log_scalars']
    assert len(hub['train/not_yet_logged'].data[0]) == 0
    assert len(ckpt['meta']['rng_states']) == 1
