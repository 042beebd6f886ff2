"""A detrex DINO-4scale release file, as a user downloads it, through the user-facing tools:
``tools/test.py CFG release.pth`` (converted in memory), as the ``teacher_ckpt`` of a KD-DETR
config trained with ``tools/train.py``, as ``load_from`` of a student, and converted once with
``tools/model_converters/release_to_mmdet.py`` (same predictions as the in-memory conversion).

The release is shrunk (R50 backbone as detrex saves it, 1 encoder / 2 decoder layers, FFN 64,
20 queries, 3 toy classes), its key names and shapes are those of the release
(tests/data/releases/detrex_dino-4scale_r50*.json), its values seeded random; nothing is
downloaded."""
import os.path as osp
import sys

import pytest
import torch
from mmengine.config import Config

from converters.detrex_fixtures import scaled_random, shrunk_shapes
from toy_helpers import (CONFIGS, ROOT, assert_same_detections, build_toy_model, predict_both,
                         run_tool, set_toy_data_root, toy_batch, toy_data_cfg_options)

RELEASED_CFG = osp.join(CONFIGS, 'detrex', 'dino-4scale-detrex_r50_8xb2-12e_coco.py')
KD_TOY_CFG = osp.join(CONFIGS, 'toy', 'kd_detr', 'kd-detr_dino-4scale_tiny-r18_1xb2-12e_toy.py')
CLI = osp.join(ROOT, 'tools', 'model_converters', 'release_to_mmdet.py')
NUM_CLASSES = 3  # the toy set's
ONE_ITER = ['train_cfg.max_epochs=1', 'train_cfg.val_interval=10',
            'train_dataloader.dataset.indices=2', 'train_dataloader.batch_size=2',
            'default_hooks.logger.interval=1', 'default_hooks.checkpoint.interval=10',
            'randomness.seed=0']

# the released config, shrunk and pointed at the toy data: what a user writes as a delta
SHRUNK_CFG = f"""_base_ = [
    {RELEASED_CFG!r},
    {osp.join(CONFIGS, '_base_', 'datasets', 'toy_coco.py')!r},
    {osp.join(CONFIGS, '_base_', 'toy_tiny.py')!r}]
data_root = _base_.toy_data_root
train_dataloader = _base_.toy_train_dataloader
val_dataloader = _base_.toy_val_dataloader
test_dataloader = _base_.toy_test_dataloader
val_evaluator = _base_.toy_val_evaluator
test_evaluator = _base_.toy_test_evaluator
train_cfg = _base_.toy_train_cfg
param_scheduler = _base_.toy_param_scheduler
default_hooks = _base_.toy_default_hooks
auto_scale_lr = dict(base_batch_size=4)
model = dict(
    num_queries=20,
    backbone=dict(init_cfg=None),
    encoder=dict(num_layers=1, layer_cfg=dict(ffn_cfg=dict(feedforward_channels=64))),
    decoder=dict(num_layers=2, layer_cfg=dict(ffn_cfg=dict(feedforward_channels=64))),
    bbox_head=dict(num_classes={NUM_CLASSES}),
    test_cfg=dict(max_per_img=20),
    dn_cfg=dict(group_cfg=dict(num_dn_queries=10)))
"""


def _random_release(seed=0):
    """The release's key set (the full R50 backbone, the rest shrunk, the class rows cut to the
    toy classes) with seeded values that keep activations in range."""
    shapes = shrunk_shapes('dino-4scale_r50')
    for k, v in shapes.items():
        if k.startswith(('class_embed.', 'transformer.decoder.class_embed.', 'label_enc.')):
            shapes[k] = (NUM_CLASSES, ) + v[1:]
    return scaled_random(shapes, seed)


@pytest.fixture(scope='module')
def release(tmp_path_factory, toy_data_root):
    """(release file as downloaded, shrunk released config file, work folder)."""
    work = tmp_path_factory.mktemp('release_e2e')
    path = str(work / 'dino_r50_4scale_shrunk.pth')
    torch.save({'model': _random_release(), 'iteration': 89999}, path)  # detrex's layout
    cfg = work / 'dino-4scale_r50_shrunk_toy.py'
    cfg.write_text(SHRUNK_CFG)
    return path, str(cfg), work


def _log_lines(proc, prefix):
    return [ln for ln in (proc.stdout + proc.stderr).splitlines() if prefix in ln]


def test_test_py_takes_the_release_file(release, toy_data_root):
    path, cfg, work = release
    proc = run_tool([sys.executable, 'tools/test.py', cfg, path, '--work-dir',
                     str(work / 'test'), '--cfg-options'] + toy_data_cfg_options(toy_data_root))
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = _log_lines(proc, f'load_from: "{path}" is a detrex release checkpoint (DINO-4scale)')
    assert len(lines) == 1 and 'converted in memory for this config' in lines[0], \
        proc.stdout[-3000:]
    assert 'coco/bbox_mAP' in proc.stdout + proc.stderr  # evaluated on the toy val set


def test_release_as_kd_detr_teacher_trains(release, toy_data_root):
    path, cfg, work = release
    kd = Config.fromfile(KD_TOY_CFG)
    teacher = Config.fromfile(cfg).model.to_dict()
    teacher['_scope_'] = 'mmdet'
    kd.model.teacher = teacher
    kd.model.teacher_ckpt = kd.teacher_ckpt = path
    kd_file = str(work / 'kd-detr_release-dino_toy.py')
    kd.dump(kd_file)
    proc = run_tool([sys.executable, 'tools/train.py', kd_file, '--work-dir',
                     str(work / 'kd'), '--cfg-options'] + ONE_ITER +
                    toy_data_cfg_options(toy_data_root))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(_log_lines(proc, f'teacher_ckpt: "{path}" is a detrex release checkpoint '
                                '(DINO-4scale)')) == 1, proc.stdout[-3000:]
    assert _log_lines(proc, 'distill.loss_cls_general'), proc.stdout[-3000:]  # it distilled
    assert osp.isfile(work / 'kd' / 'epoch_1.pth')


def test_release_as_load_from_starts_a_student(release, toy_data_root):
    path, cfg, work = release
    proc = run_tool([sys.executable, 'tools/train.py', cfg, '--work-dir', str(work / 'ft'),
                     '--cfg-options', f'load_from={path}'] + ONE_ITER +
                    toy_data_cfg_options(toy_data_root))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(_log_lines(proc, f'load_from: "{path}" is a detrex release checkpoint')) == 1
    assert osp.isfile(work / 'ft' / 'epoch_1.pth')
    # the student started from the release: its frozen stem is the release's, bit for bit
    state = torch.load(str(work / 'ft' / 'epoch_1.pth'), map_location='cpu',
                       weights_only=True)['state_dict']
    assert torch.equal(state['backbone.conv1.weight'],
                       _random_release()['backbone.stem.conv1.weight'])


def test_cli_conversion_predicts_as_the_in_memory_one(release, toy_data_root):
    path, cfg_file, work = release
    from mmdet_ksdetr.converters.release import convert_checkpoint
    from mmdet_ksdetr.utils.checkpoint_io import load_weights_strictly
    dst = str(work / 'dino_mmdet.pth')
    proc = run_tool([sys.executable, CLI, path, dst, '--config', cfg_file])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'format: detrex (DINO-4scale)' in proc.stdout

    def config():  # mmdet's DINO writes into its config while building: one per use
        return set_toy_data_root(Config.fromfile(cfg_file), toy_data_root)
    from_cli = build_toy_model(config(), seed=1)
    load_weights_strictly(from_cli, dst)
    in_memory = build_toy_model(config(), seed=2)
    in_memory.load_state_dict(convert_checkpoint(path, cfg=config())['state_dict'], strict=True)
    batch = toy_batch(config(), toy_data_root, split='test', n=2)
    got, want = predict_both(from_cli, in_memory, batch)
    assert_same_detections(got, want, num=20, atol=0)
