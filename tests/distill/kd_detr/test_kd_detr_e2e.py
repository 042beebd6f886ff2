"""End to end, as a user runs it: KD-DETR + TPRD trains with tools/dist_train.sh on 2 CPU
processes (gloo), the student is extracted with tools/pth_transfer.py and evaluated with
tools/test.py on the student config. (The other distillers are checked the same way in the
slow sweep test_all_toy_distillers_e2e.py; one distributed run keeps the suite fast.)"""
import os.path as osp

from toy_helpers import build_toy_model, distill_train_transfer_test, load_toy_config

CFG = 'configs/toy/kd_detr/kd-detr-tprd_deformable-detr_tiny-r18_1xb2-12e_toy.py'
TEACHER = 'toy/deformable-detr_tiny-r18_1xb2-12e_toy.py'


def test_dist_train_transfer_test(toy_data_root, tmp_path):
    teacher = build_toy_model(load_toy_config(TEACHER))
    log, state = distill_train_transfer_test(
        CFG, teacher, osp.join('configs', TEACHER), toy_data_root, tmp_path,
        test_options=['model.num_queries=20'])
    assert 'distill.loss_cls_specific' in log and 'distill.loss_cls_general' in log
    assert 'level_embed' in state
