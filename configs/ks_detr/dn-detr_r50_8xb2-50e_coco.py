# DN-DETR R50, 50 epochs (baseline of KS-DN-DETR; detrex DN-DETR R50: 44.7 AP). mmdet has no
# DN-DETR: DAB-DETR (stock config) plus denoising training with 5 groups, label noise 0.2, box
# noise 0.4 and the indicator channel, random anchor-box centres, no weight decay on norms.
_base_ = 'mmdet::dab_detr/dab-detr_r50_8xb2-50e_coco.py'

custom_imports = dict(imports=['mmdet_ksdetr'], allow_failed_imports=False)

model = dict(
    type='DNDETR',
    with_random_refpoints=True,
    dn_cfg=dict(
        label_noise_scale=0.2,
        box_noise_scale=0.4,
        group_cfg=dict(dynamic=False, num_groups=5),
        with_indicator=True),
    bbox_head=dict(type='DNDETRHead'))

optim_wrapper = dict(paramwise_cfg=dict(norm_decay_mult=0.0))
