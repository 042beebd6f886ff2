"""End to end: a toy KS-DETR config trains with tools/dist_train.sh on 2 CPU processes (gloo)
and tools/test.py evaluates the checkpoint, which loads into the stock detector without its
teacher parameters."""
import glob
import os.path as osp

import torch
from toy_helpers import free_port, load_toy_config, run_tool, toy_data_cfg_options

from mmdet_ksdetr.models.ks_detr.ks_detr_mixin import is_ks_teacher_key, ks_student_state_dict

CFG = 'configs/toy/ks_detr/ks-dab-detr_tiny-r18_1xb2-12e_toy.py'


def test_ks_dist_train_then_test(toy_data_root, tmp_path):
    work = str(tmp_path / 'work')
    opts = ['--cfg-options', 'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
            'default_hooks.logger.interval=1', *toy_data_cfg_options(toy_data_root)]
    res = run_tool(['bash', 'tools/dist_train.sh', CFG, '2', '--work-dir', work, *opts],
                   env=dict(PORT=str(free_port())))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    log = open(glob.glob(osp.join(work, '*', '*.log'))[0]).read()
    for key in ('ks_share_v.loss_cls', 'ks_share_a.loss_iou', 'd0.loss_bbox', 'coco/bbox_mAP'):
        assert key in log, key
    ckpt = osp.join(work, 'epoch_1.pth')
    res = run_tool(['python', 'tools/test.py', CFG, ckpt, '--work-dir', work, '--cfg-options',
                    *toy_data_cfg_options(toy_data_root)])
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert 'bbox_mAP_copypaste' in res.stdout + res.stderr

    # the trained checkpoint minus the teacher parameters is a stock DAB-DETR checkpoint
    from mmdet.registry import MODELS
    state = torch.load(ckpt, map_location='cpu', weights_only=True)['state_dict']
    assert any(is_ks_teacher_key(k) for k in state)
    cfg = load_toy_config('toy/dab-detr_tiny-r18_1xb2-12e_toy.py')
    MODELS.build(cfg.model).load_state_dict(ks_student_state_dict(state), strict=True)
