"""Every toy distiller config names (in its header comment) the plain toy config of its student,
and the student that tools/pth_transfer.py extracts loads STRICTLY into the model built from
that config: no missing, unexpected or mis-shaped key."""
import glob
import os.path as osp
import re
import sys
import warnings

import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope
from toy_helpers import CONFIGS, ROOT

sys.path.insert(0, osp.join(ROOT, 'tools'))
import pth_transfer  # noqa: E402

STUDENT_LINE = re.compile(r'^# Student config \(.*\):\n#\s+(configs/toy/\S+\.py)$', re.M)


def _toy_distillers():
    out = []
    for path in sorted(glob.glob(osp.join(CONFIGS, 'toy', '*', '*.py'))):
        if Config.fromfile(path).model.get('_scope_') == 'mmrazor':
            out.append(osp.relpath(path, ROOT))
    return out


DISTILLERS = _toy_distillers()


def named_student_config(rel_path):
    """The student config a distiller config's header comment names."""
    with open(osp.join(ROOT, rel_path)) as f:
        header = ''.join(line for line in f if line.startswith('#'))
    found = STUDENT_LINE.findall(header)
    assert len(found) == 1, f'{rel_path}: its header must name one student config, got {found}'
    return found[0]


def test_every_method_has_toy_distillers():
    methods = {p.split(osp.sep)[2] for p in DISTILLERS}
    assert methods == {'crosskd', 'd3etr', 'detr_distill', 'feature_kd', 'kd_detr', 'qskd'}, methods


@pytest.mark.parametrize('rel_path', DISTILLERS)
def test_student_loads_strictly_into_named_config(rel_path):
    student_cfg_path = named_student_config(rel_path)
    student_cfg = Config.fromfile(osp.join(ROOT, student_cfg_path))
    assert student_cfg.model.get('_scope_', 'mmdet') == 'mmdet'
    cfg = Config.fromfile(osp.join(ROOT, rel_path))
    cfg.model.teacher_ckpt = None
    init_default_scope('mmdet')
    from mmdet.registry import MODELS as MMDET_MODELS
    from mmrazor.registry import MODELS as RAZOR_MODELS
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        algo = RAZOR_MODELS.build(cfg.model)
        plain = MMDET_MODELS.build(student_cfg.model)
    prefix, student = pth_transfer.student_state_dict(algo.state_dict())
    assert prefix == 'architecture.'
    result = plain.load_state_dict(student, strict=True)  # raises on mis-shaped keys too
    assert not result.missing_keys and not result.unexpected_keys
    assert len(student) == len(plain.state_dict())
