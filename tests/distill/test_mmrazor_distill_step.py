"""A stock mmrazor SingleTeacherDistill + ConfigurableDistiller, built from a config file,
runs one training step on the toy data (proves the mmrazor stack works through the shims)."""
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from toy_helpers import CONFIGS, build_toy_model, set_toy_data_root, toy_batch

DISTILL_CFG = f'''
_base_ = ['{CONFIGS}/toy/deformable-detr_tiny-r18_1xb2-12e_toy.py']
_toy_detector = _base_.model
model = dict(
    _delete_=True,
    _scope_='mmrazor',
    type='SingleTeacherDistill',
    architecture=_toy_detector,  # carries _scope_='mmdet' from its mmdet:: base
    teacher=_toy_detector,
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders=dict(neck=dict(type='ModuleOutputs', source='neck')),
        teacher_recorders=dict(neck=dict(type='ModuleOutputs', source='neck')),
        distill_losses=dict(loss_neck0=dict(type='L2Loss', loss_weight=1.0)),
        loss_forward_mappings=dict(loss_neck0=dict(
            s_feature=dict(from_student=True, recorder='neck', data_idx=0),
            t_feature=dict(from_student=False, recorder='neck', data_idx=0)))))
find_unused_parameters = True
'''


def test_single_teacher_distill_one_step(tmp_path, toy_data_root):
    path = tmp_path / 'distill_cfg.py'
    path.write_text(DISTILL_CFG)
    cfg = set_toy_data_root(Config.fromfile(str(path)), toy_data_root)
    # init_weights() as the Runner does: mmdet's DeformableDETR.level_embed is allocated with
    # torch.Tensor() and holds whatever memory it got until init_weights() runs.
    model = build_toy_model(cfg)
    assert type(model).__name__ == 'SingleTeacherDistill'
    assert type(model.distiller).__name__ == 'ConfigurableDistiller'
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    batch = toy_batch(cfg, toy_data_root, n=2)
    student_before = model.architecture.neck.convs[0].conv.weight.detach().clone()
    teacher_before = model.teacher.neck.convs[0].conv.weight.detach().clone()
    losses = model.train_step(batch, optim)
    assert 'distill.loss_neck0' in losses and 'student.loss_cls' in losses
    assert torch.isfinite(losses['loss'])
    assert losses['distill.loss_neck0'] > 0
    assert not torch.equal(student_before, model.architecture.neck.convs[0].conv.weight)
    assert torch.equal(teacher_before, model.teacher.neck.convs[0].conv.weight)
