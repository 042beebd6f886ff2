# MGD feature baseline on the toy set: masked generative distillation of the four ChannelMapper
# outputs (MMRazor MGDConnector with mask ratio 0.5 as in the TPRD release, MGDLoss with the MGD
# paper's alpha 2e-5 for its summed-squares normalisation). No TPRD variant (features only).
# Student config (tools/test.py with the tools/pth_transfer.py output):
#   configs/toy/deformable-detr_tiny-r18-student_1xb2-12e_toy.py
_base_ = ['./fitnet_deformable-detr_tiny-r18_1xb2-12e_toy.py']

model = _base_.mgd
