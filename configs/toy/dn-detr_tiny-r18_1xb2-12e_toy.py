# DN-DETR on the toy set (baseline of ks-dn-detr): the tiny DAB-DETR of
# dab-detr_tiny-r18_1xb2-12e_toy.py with DN-DETR denoising training (5 groups, label noise 0.2,
# box noise 0.4, indicator channel).
_base_ = ['./dab-detr_tiny-r18_1xb2-12e_toy.py']

model = dict(
    type='DNDETR',
    dn_cfg=dict(
        label_noise_scale=0.2,
        box_noise_scale=0.4,
        group_cfg=dict(dynamic=False, num_groups=5),
        with_indicator=True),
    bbox_head=dict(type='DNDETRHead'))
