"""tools/misc/merge_weight.py: student-from-teacher initial checkpoint (TPRD's init)."""
import copy
import os.path as osp
import pickle
import re

import pytest
import torch
from mmdet.registry import MODELS
from output_helpers import hostile_payloads
from toy_helpers import ROOT, build_toy_model, load_toy_config, run_tool

from merge_weight import MergeError, load_state, main, merge_weights

TOY = 'toy/deformable-detr_tiny-r18_1xb2-12e_toy.py'


@pytest.fixture(scope='module')
def teacher_and_backbone(tmp_path_factory):
    cfg = load_toy_config(TOY)
    teacher = build_toy_model(cfg, model=copy.deepcopy(cfg.model))
    d = tmp_path_factory.mktemp('merge')
    t_path = str(d / 'teacher.pth')
    torch.save(dict(meta=dict(epoch=1), state_dict=teacher.state_dict()), t_path)
    torch.manual_seed(1)
    backbone = MODELS.build(cfg.model.backbone)
    b_path = str(d / 'backbone.pth')
    torch.save(backbone.state_dict(), b_path)
    return cfg, teacher, backbone, t_path, b_path, d


def test_merge_cli_and_load_into_student(teacher_and_backbone):
    cfg, teacher, backbone, t_path, b_path, d = teacher_and_backbone
    out = str(d / 'merged.pth')
    res = run_tool(['python', 'tools/misc/merge_weight.py', '--student', b_path,
                    '--student-prefix', 'backbone.', '--teacher', t_path, '--out', out])
    assert res.returncode == 0, res.stderr
    assert 'copied to the student' in res.stdout
    state = torch.load(out, weights_only=True)['state_dict']
    assert all(k.startswith(('architecture.', 'teacher.')) for k in state)
    assert len([k for k in state if k.startswith('teacher.')]) == len(teacher.state_dict())
    # the student's part loads into a fresh student: backbone from its own weights, level
    # embeddings from the teacher, everything else left to the student's init
    student = MODELS.build(copy.deepcopy(cfg.model))
    arch = {k[len('architecture.'):]: v for k, v in state.items()
            if k.startswith('architecture.')}
    missing, unexpected = student.load_state_dict(arch, strict=False)
    assert not unexpected
    assert 'level_embed' not in missing and not any(k.startswith('backbone.') for k in missing)
    torch.testing.assert_close(student.level_embed, teacher.level_embed)
    torch.testing.assert_close(student.backbone.conv1.weight, backbone.conv1.weight)
    assert not torch.equal(student.backbone.conv1.weight, teacher.backbone.conv1.weight)


def test_pkl_input_and_patterns(teacher_and_backbone, tmp_path):
    _, teacher, backbone, t_path, _, _ = teacher_and_backbone
    pkl = str(tmp_path / 'backbone.pkl')
    with open(pkl, 'wb') as f:
        pickle.dump({'model': {k: v.numpy() for k, v in backbone.state_dict().items()}}, f)
    state = load_state(pkl)
    assert torch.equal(state['conv1.weight'], backbone.conv1.weight)
    merged, report = merge_weights(state, load_state(t_path), 'backbone.',
                                   ('level_embed', 'neck.*'))
    assert 'level_embed' in report['copied_to_student']
    assert any(k.startswith('neck.') for k in report['copied_to_student'])
    assert torch.equal(merged['architecture.neck.convs.0.conv.weight'],
                       teacher.neck.convs[0].conv.weight)


def test_bad_inputs(teacher_and_backbone, tmp_path):
    _, _, _, t_path, b_path, _ = teacher_and_backbone
    evil = str(tmp_path / 'evil.pkl')
    with open(evil, 'wb') as f:
        pickle.dump({'model': {'x': osp.join}}, f)
    with pytest.raises(MergeError, match=re.escape('would run code (posixpath.join)')):
        load_state(evil)
    marker = str(tmp_path / 'pwned')
    for culprit, payload in hostile_payloads(marker).items():
        with open(evil, 'wb') as f:
            pickle.dump({'model': {'x': payload}}, f, protocol=2)
        with pytest.raises(MergeError, match=re.escape(f'would run code ({culprit})')):
            load_state(evil)
    assert not osp.exists(marker)
    (tmp_path / 'junk.pkl').write_bytes(b'junk')
    with pytest.raises(MergeError, match='is not a weight .pkl'):
        load_state(str(tmp_path / 'junk.pkl'))
    with pytest.raises(MergeError, match='does not exist'):
        load_state(str(tmp_path / 'nope.pth'))
    with pytest.raises(MergeError, match='no teacher key matches'):
        merge_weights(load_state(b_path), load_state(t_path), 'backbone.', ('no_such_key', ))
    with pytest.raises(SystemExit, match='must end with'):
        main(['--student', b_path, '--student-prefix', 'backbone', '--teacher', t_path,
              '--out', str(tmp_path / 'o.pth')])
    assert osp.isdir(ROOT)
