"""tools/test.py evaluates a distillation checkpoint with its distillation config. The
checkpoint holds the teacher's weights (``teacher.*``), so evaluation must not need the
teacher file the config names; today the distiller loads that file when it is built."""
import os
import os.path as osp
import re
import sys
import warnings

import torch
from toy_helpers import (CONFIGS, TOOLS, build_toy_model, load_toy_config, run_tool,
                         toy_data_cfg_options)

DISTILL = 'toy/detr_distill/detr-distill_deformable-detr_tiny-r18_1xb2-12e_toy.py'
TEACHER = 'toy/deformable-detr_tiny-r18_1xb2-12e_toy.py'


def _checkpoints(folder):
    """A teacher checkpoint and a distillation checkpoint built with it (as training saves)."""
    from mmrazor.registry import MODELS as RAZOR_MODELS
    teacher_path = str(folder / 'teacher.pth')
    teacher = build_toy_model(load_toy_config(TEACHER))
    torch.save(dict(meta={}, state_dict=teacher.state_dict()), teacher_path)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        cfg = load_toy_config(DISTILL)
        cfg.model.teacher_ckpt = teacher_path
        algo = RAZOR_MODELS.build(cfg.model)
    distill_path = str(folder / 'distill.pth')
    torch.save(dict(meta=dict(epoch=12), state_dict=algo.state_dict()), distill_path)
    return teacher_path, distill_path


def _test_tool(distill_path, teacher_path, data_root, work_dir):
    res = run_tool([sys.executable, osp.join(TOOLS, 'test.py'), osp.join(CONFIGS, DISTILL),
                    distill_path, '--work-dir', str(work_dir), '--cfg-options',
                    f'model.teacher_ckpt={teacher_path}', *toy_data_cfg_options(data_root)])
    return res, res.stdout + res.stderr


def test_distill_checkpoint_evaluates_with_teacher_file(toy_data_root, tmp_path):
    teacher_path, distill_path = _checkpoints(tmp_path)
    res, log = _test_tool(distill_path, teacher_path, toy_data_root, tmp_path / 'w')
    assert res.returncode == 0, log[-3000:]
    assert re.search(r'coco/bbox_mAP: \d\.\d+', log), log[-3000:]


def test_distill_checkpoint_evaluates_without_teacher_file(toy_data_root, tmp_path):
    teacher_path, distill_path = _checkpoints(tmp_path)
    os.remove(teacher_path)  # the teacher run's work_dir was cleaned up
    res, log = _test_tool(distill_path, teacher_path, toy_data_root, tmp_path / 'w')
    assert res.returncode == 0, log[-3000:]
    assert re.search(r'coco/bbox_mAP: \d\.\d+', log), log[-3000:]
