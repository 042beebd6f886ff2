# Ablation of the KS-DETR release: dual attention sharing A (streams {AV, AV^t}; the teacher
# has its own value projection only), KS-DAB-DETR R101, 50 epochs.
_base_ = './ks-dab-detr_r101_8xb2-50e_coco.py'

model = dict(ks_cfg=dict(mode='dual_share_a'))
