# Follows the TPRD release (xingyitong1/TPRD) for this feature baseline.
# MGD feature baseline: Deformable DETR R50 -> R18, 50 epochs, 8 GPUs x 2 images; masked
# generative distillation of the four ChannelMapper outputs (MMRazor MGDConnector, mask ratio
# 0.5 as in the TPRD release; MGDLoss alpha 2e-5, the MGD paper's value for its summed-squares
# normalisation). No TPRD variant (features only).
_base_ = './fitnet_deformable-detr_r50_deformable-detr_r18_8xb2-50e_coco.py'

model = dict(
    distiller=dict(
        _delete_=True,
        type='ConfigurableDistiller',
        student_recorders=_base_.neck_outputs,
        teacher_recorders=_base_.neck_outputs,
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
