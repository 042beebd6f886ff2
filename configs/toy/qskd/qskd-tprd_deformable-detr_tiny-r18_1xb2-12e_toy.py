# QSKD + TPRD on the toy set: qskd_deformable-detr_tiny-r18_1xb2-12e_toy.py with the TPRD switch on
# (refined targets, decoupled class loss) and TPRD's class weight 3.
# Student config (tools/test.py with the tools/pth_transfer.py output):
#   configs/toy/deformable-detr_tiny-r18-student_1xb2-12e_toy.py
_base_ = ['./qskd_deformable-detr_tiny-r18_1xb2-12e_toy.py']

model = dict(tprd=True, distiller=dict(distill_losses=dict(loss_pred=dict(loss_cls_weight=3.0))))
