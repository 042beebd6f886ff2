# Follows the TPRD release (xingyitong1/TPRD) for QSKD (no official QSKD code exists).
# QSKD + TPRD: the QSKD baseline with the TPRD switch on (pairs chosen on the raw teacher, losses
# on the refined one, decoupled class loss) and TPRD's class weight 3.
_base_ = './qskd_deformable-detr_r50_deformable-detr_r18_8xb2-50e_coco.py'

model = dict(tprd=True, distiller=dict(distill_losses=dict(loss_pred=dict(loss_cls_weight=3.0))))
