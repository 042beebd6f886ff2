# FitNet feature baseline on the toy set: the student's four ChannelMapper outputs imitate the
# teacher's through a 1x1 hint regressor (MMRazor ConvModuleConnector + L2Loss, mean squared
# error, weight 10 as in the TPRD release's FitNet baseline). No TPRD variant (features only).
# Student config (tools/test.py with the tools/pth_transfer.py output):
#   configs/toy/deformable-detr_tiny-r18-student_1xb2-12e_toy.py
_base_ = ['../deformable-detr_tiny-r18_1xb2-12e_toy.py']

teacher_ckpt = 'work_dirs/deformable-detr_tiny-r18_1xb2-12e_toy/epoch_12.pth'

student = dict(_base_.model, num_queries=20, _scope_='mmdet')
teacher = dict(_base_.model, _scope_='mmdet')
neck_outputs = dict(
    neck0=dict(type='ModuleOutputs', source='neck.convs.0'),
    neck1=dict(type='ModuleOutputs', source='neck.convs.1'),
    neck2=dict(type='ModuleOutputs', source='neck.convs.2'),
    neck3=dict(type='ModuleOutputs', source='neck.extra_convs.0'))

model = dict(
    _delete_=True,
    _scope_='mmrazor',
    type='DETRFeatureKD',
    architecture=student,
    teacher=teacher,
    teacher_ckpt=teacher_ckpt,
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

find_unused_parameters = True
