# Ablation of the KS-DETR release: dual attention sharing V (streams {AV, A^tV}; the teacher
# has its own query / key projections only), KS-DAB-DETR R101, 50 epochs.
_base_ = './ks-dab-detr_r101_8xb2-50e_coco.py'

model = dict(ks_cfg=dict(mode='dual_share_v'))
