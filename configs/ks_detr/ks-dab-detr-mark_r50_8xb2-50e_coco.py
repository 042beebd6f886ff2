# Ablation of the KS-DETR release ("mark", MarkFg1Bg0): the teacher input is the encoder input
# with its last channel overwritten by the GT foreground mask instead of the sMLP.
_base_ = './ks-dab-detr_r50_8xb2-50e_coco.py'

model = dict(ks_cfg=dict(teacher_input=dict(_delete_=True, type='KSMarkFg')))
