# FGD feature baseline on the toy set: focal (GT foreground / background, attention-weighted) and
# global (context block) distillation of the four ChannelMapper outputs with the FGD paper's
# coefficients (temp 0.5, alpha 1e-3, beta 5e-4, gamma 5e-4, lambda 5e-6). No TPRD variant.
# Student config (tools/test.py with the tools/pth_transfer.py output):
#   configs/toy/deformable-detr_tiny-r18-student_1xb2-12e_toy.py
_base_ = ['./fitnet_deformable-detr_tiny-r18_1xb2-12e_toy.py']

model = dict(
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
