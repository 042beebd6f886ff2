# DN-Deformable-DETR on the toy set (baseline of ks-dn-deformable-detr): the tiny Deformable DETR
# of deformable-detr_tiny-r18_1xb2-12e_toy.py with box refinement, 4-D anchor queries and DN-DETR
# denoising training (5 groups, label noise 0.2, box noise 0.4).
_base_ = ['./deformable-detr_tiny-r18_1xb2-12e_toy.py']

model = dict(
    type='DNDeformableDETR',
    with_box_refine=True,
    dn_cfg=dict(
        label_noise_scale=0.2,
        box_noise_scale=0.4,
        group_cfg=dict(dynamic=False, num_groups=5),
        with_indicator=True),
    bbox_head=dict(type='DINOHead'))
