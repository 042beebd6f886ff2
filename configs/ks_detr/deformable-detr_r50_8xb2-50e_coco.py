# Deformable DETR R50, 50 epochs, with the KS-DETR release's (detrex) hyper-parameters: the
# baseline of KS-Deformable-DETR (the converted official model: 44.59 AP, top-300). Differences
# from mmdet's deformable-detr_r50_16xb2-50e_coco.py: total batch 16, lr 1e-4, no lr x0.1 on
# sampling offsets / reference points, classification loss weight 1, top-300 evaluation, no
# weight decay on norm layers. No box refinement, not two-stage.
_base_ = 'mmdet::deformable_detr/deformable-detr_r50_16xb2-50e_coco.py'

custom_imports = dict(imports=['mmdet_ksdetr'], allow_failed_imports=False)

model = dict(
    bbox_head=dict(loss_cls=dict(loss_weight=1.0)),
    test_cfg=dict(max_per_img=300))

optim_wrapper = dict(
    optimizer=dict(lr=0.0001),
    paramwise_cfg=dict(
        _delete_=True,
        norm_decay_mult=0.0,
        custom_keys={'backbone': dict(lr_mult=0.1)}))
auto_scale_lr = dict(base_batch_size=16)
