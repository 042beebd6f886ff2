"""End to end, as a user runs it: KD-DETR + TPRD trains with tools/dist_train.sh on 2 CPU
processes (gloo), the student is extracted with tools/pth_transfer.py and evaluated with
tools/test.py on the student config. (The other distillers are checked the same way by hand,
see docs/tprd.md; one distributed run keeps the suite fast.)"""
import os.path as osp
import re

import torch
from toy_helpers import (build_toy_model, free_port, load_toy_config, run_tool,
                         toy_data_cfg_options)

CFG = 'configs/toy/kd_detr/kd-detr-tprd_deformable-detr_tiny-r18_1xb2-12e_toy.py'
TEACHER = 'toy/deformable-detr_tiny-r18_1xb2-12e_toy.py'


def test_dist_train_transfer_test(toy_data_root, tmp_path):
    teacher = build_toy_model(load_toy_config(TEACHER))
    t_ckpt = str(tmp_path / 'teacher.pth')
    torch.save(dict(meta=dict(epoch=12), state_dict=teacher.state_dict()), t_ckpt)

    work = str(tmp_path / 'work')
    opts = toy_data_cfg_options(toy_data_root)
    res = run_tool(['bash', 'tools/dist_train.sh', CFG, '2', '--work-dir', work,
                    '--cfg-options', f'model.teacher_ckpt={t_ckpt}', 'train_cfg.max_epochs=1',
                    'train_cfg.val_interval=1'] + opts,
                   env=dict(PORT=str(free_port()), OMP_NUM_THREADS='1'))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert osp.isfile(osp.join(work, 'epoch_1.pth'))
    log = res.stdout + res.stderr
    assert 'distill.loss_cls_specific' in log and 'distill.loss_cls_general' in log
    assert 'coco/bbox_mAP' in log

    student = str(tmp_path / 'student.pth')
    res = run_tool(['python', 'tools/pth_transfer.py', '--ckpt_path',
                    osp.join(work, 'epoch_1.pth'), '--output_path', student])
    assert res.returncode == 0, res.stderr
    state = torch.load(student, weights_only=True)['state_dict']
    assert 'level_embed' in state and not any(k.startswith('teacher') for k in state)

    res = run_tool(['python', 'tools/test.py', osp.join('configs', TEACHER), student,
                    '--work-dir', str(tmp_path / 'test'), '--cfg-options',
                    'model.num_queries=20'] + opts)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert re.search(r'coco/bbox_mAP: \d', res.stdout + res.stderr)
