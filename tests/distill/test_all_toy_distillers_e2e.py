"""Every toy distiller, with and without TPRD, as a user runs it: ``tools/dist_train.sh CFG 2``
(2 gloo CPU processes, 1 epoch on the 16-image toy set, random-init teacher checkpoint), then
``tools/pth_transfer.py`` and ``tools/test.py`` on the student's own config.

About 45 s a config, 16 configs: too slow for every CI run, so it runs only with
``MMDET_KSDETR_SLOW=1`` (``MMDET_KSDETR_SLOW=1 python -m pytest tests/distill/
test_all_toy_distillers_e2e.py``). CI runs the KD-DETR + TPRD case in test_kd_detr_e2e.py and
the DETRDistill case in test_detr_distill_e2e.py; docs/tprd.md lists the last full run.
"""
import copy
import glob
import os.path as osp
import re

import pytest
from mmengine.config import Config
from toy_helpers import CONFIGS, build_toy_model, distill_train_transfer_test, slow

DISTILLER_TYPES = ('DETRDistill', 'KDDETR', 'D3ETR', 'QSKD', 'DETRFeatureKD', 'CrossKD')
DISTILLER_PREFIXES = ('detr-distill', 'kd-detr', 'd3etr', 'qskd', 'fitnet', 'mgd', 'fgd',
                      'crosskd')
TOY_DISTILL_CONFIGS = sorted(
    p for p in glob.glob(osp.join(CONFIGS, 'toy', '**', '*.py'), recursive=True)
    if osp.basename(p).split('_')[0].replace('-tprd', '') in DISTILLER_PREFIXES)

slow_sweep = slow('slow end-to-end sweep')


def test_sweep_lists_every_toy_distiller():
    """The sweep covers 4 TPRD distillers with and without TPRD plus the feature baselines, and
    no distiller config in configs/toy/ escapes it."""
    names = [osp.basename(p) for p in TOY_DISTILL_CONFIGS]
    for path in glob.glob(osp.join(CONFIGS, 'toy', '**', '*.py'), recursive=True):
        is_distiller = Config.fromfile(path).model.get('type') in DISTILLER_TYPES
        assert is_distiller == (path in TOY_DISTILL_CONFIGS), path
    assert sum(n.split('_')[0].endswith('-tprd') for n in names) >= 4, names
    for prefix in DISTILLER_PREFIXES:
        assert any(n.startswith(prefix + '_') for n in names), (prefix, names)


@slow_sweep
@pytest.mark.parametrize('cfg_path', TOY_DISTILL_CONFIGS, ids=osp.basename)
def test_toy_distiller_train_transfer_test(cfg_path, toy_data_root, tmp_path):
    cfg = Config.fromfile(cfg_path)
    teacher = build_toy_model(cfg, model=copy.deepcopy(cfg.model.teacher))
    # the student's own config: the distillation config with model = its architecture
    student_cfg = copy.deepcopy(cfg)
    student_cfg.model = cfg.model.architecture
    student_cfg_path = str(tmp_path / 'student_cfg.py')
    student_cfg.dump(student_cfg_path)
    log, _ = distill_train_transfer_test(cfg_path, teacher, student_cfg_path, toy_data_root,
                                         tmp_path)
    assert re.search(r'distill\.loss_\w+: \d', log), 'no distillation loss was logged'
