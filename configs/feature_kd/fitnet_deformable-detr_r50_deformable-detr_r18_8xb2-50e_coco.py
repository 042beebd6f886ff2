# Follows the TPRD release (xingyitong1/TPRD) for this feature baseline.
# FitNet feature baseline: Deformable DETR R50 (mmdet's released teacher) -> Deformable DETR R18,
# 50 epochs, 8 GPUs x 2 images; the four ChannelMapper outputs through a 1x1 hint regressor,
# mean squared error, weight 10 (TPRD's FitNet baseline). No TPRD variant (features only).
#
#   bash tools/dist_train.sh configs/feature_kd/<this file> 8
#   python tools/pth_transfer.py --ckpt_path work_dirs/<this>/epoch_50.pth --output_path r18.pth
#   bash tools/dist_test.sh configs/detectors/deformable-detr_r18_16xb2-50e_coco.py r18.pth 8
_base_ = '../kd_detr/kd-detr_deformable-detr_r50_deformable-detr_r18_8xb2-50e_coco.py'

neck_outputs = dict(
    neck0=dict(type='ModuleOutputs', source='neck.convs.0'),
    neck1=dict(type='ModuleOutputs', source='neck.convs.1'),
    neck2=dict(type='ModuleOutputs', source='neck.convs.2'),
    neck3=dict(type='ModuleOutputs', source='neck.extra_convs.0'))

model = dict(
    _delete_=True,
    _scope_='mmrazor',
    type='DETRFeatureKD',
    architecture=_base_.student,
    teacher=_base_.teacher,
    teacher_ckpt=_base_.teacher_ckpt,
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
