# Feature KD on the four neck levels of a Deformable DETR (256 channels each). `neck_outputs`
# names the recorded neck modules; `fitnet` is the whole distiller (a 1x1 conv hint connector
# and an L2 loss per level), used as
#   model = dict(_base_.fitnet, architecture=student, teacher=teacher, teacher_ckpt=...)
# `fgd` and `mgd` are what an FGD / MGD config changes in a FitNet config: `model = _base_.fgd`.
neck_outputs = dict(
    neck0=dict(type='ModuleOutputs', source='neck.convs.0'),
    neck1=dict(type='ModuleOutputs', source='neck.convs.1'),
    neck2=dict(type='ModuleOutputs', source='neck.convs.2'),
    neck3=dict(type='ModuleOutputs', source='neck.extra_convs.0'))

fitnet = dict(
    _delete_=True,
    _scope_='mmrazor',
    type='DETRFeatureKD',
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders=neck_outputs,
        teacher_recorders=neck_outputs,
        connectors={
            f'hint{i}': dict(type='ConvModuleConnector', in_channel=256, out_channel=256,
                             kernel_size=1, norm_cfg=None, act_cfg=None)
            for i in range(4)
        },
        distill_losses={
            f'loss_fitnet_{i}': dict(type='L2Loss', loss_weight=10.0, normalize=False,
                                     div_element=True)
            for i in range(4)
        },
        loss_forward_mappings={
            f'loss_fitnet_{i}': dict(
                s_feature=dict(from_student=True, recorder=f'neck{i}', connector=f'hint{i}'),
                t_feature=dict(from_student=False, recorder=f'neck{i}'))
            for i in range(4)
        }))

fgd = dict(
    fgd_levels={f'loss_fgd_{i}': i for i in range(4)},
    distiller=dict(
        _delete_=True,
        type='ConfigurableDistiller',
        distill_losses={
            f'loss_fgd_{i}': dict(type='FGDLoss', student_channels=256, teacher_channels=256,
                                  temp=0.5, alpha_fgd=1e-3, beta_fgd=5e-4, gamma_fgd=5e-4,
                                  lambda_fgd=5e-6)
            for i in range(4)
        }))

mgd = dict(
    distiller=dict(
        _delete_=True,
        type='ConfigurableDistiller',
        student_recorders=neck_outputs,
        teacher_recorders=neck_outputs,
        connectors={
            f'mgd{i}': dict(type='MGDConnector', student_channels=256, teacher_channels=256,
                            lambda_mgd=0.5)
            for i in range(4)
        },
        distill_losses={f'loss_mgd_{i}': dict(type='MGDLoss', alpha_mgd=2e-5)
                        for i in range(4)},
        loss_forward_mappings={
            f'loss_mgd_{i}': dict(
                preds_S=dict(from_student=True, recorder=f'neck{i}', connector=f'mgd{i}'),
                preds_T=dict(from_student=False, recorder=f'neck{i}'))
            for i in range(4)
        }))
