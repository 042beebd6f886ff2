# Follows the TPRD release (xingyitong1/TPRD) for this feature baseline.
# MGD feature baseline: Deformable DETR R50 -> R18, 50 epochs, 8 GPUs x 2 images; masked
# generative distillation of the four ChannelMapper outputs (MMRazor MGDConnector, mask ratio
# 0.5 as in the TPRD release; MGDLoss alpha 2e-5, the MGD paper's value for its summed-squares
# normalisation). No TPRD variant (features only).
_base_ = './fitnet_deformable-detr_r50_deformable-detr_r18_8xb2-50e_coco.py'

model = _base_.mgd
