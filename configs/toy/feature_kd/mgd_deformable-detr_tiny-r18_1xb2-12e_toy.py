# MGD feature baseline on the toy set: masked generative distillation of the four ChannelMapper
# outputs (MMRazor MGDConnector with mask ratio 0.5 as in the TPRD release, MGDLoss with the MGD
# paper's alpha 2e-5 for its summed-squares normalisation). No TPRD variant (features only).
# Student config (tools/test.py with the tools/pth_transfer.py output):
#   configs/toy/deformable-detr_tiny-r18-student_1xb2-12e_toy.py
_base_ = ['./fitnet_deformable-detr_tiny-r18_1xb2-12e_toy.py']

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
