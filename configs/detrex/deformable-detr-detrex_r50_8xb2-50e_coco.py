# Deformable-DETR R50, 50 epochs, as released by IDEA-Research/detrex (projects/deformable_detr):
#   checkpoint  deformable_detr_r50_50ep_backbone_1e-5_class_weight_2.0.pth
#   download    https://github.com/IDEA-Research/detrex-storage/releases/download/v0.4.0/deformable_detr_r50_50ep_backbone_1e-5_class_weight_2.0.pth  # noqa: E501
#   box AP 44.9 on COCO val2017 (the release's number, not re-measured here)
# Convert, then test as any mmdet checkpoint:
#   python tools/model_converters/release_to_mmdet.py \
#       deformable_detr_r50_50ep_backbone_1e-5_class_weight_2.0.pth \
#       deformable-detr_r50_8xb2-50e_coco_detrex.pth --source detrex \
#       --config configs/detrex/deformable-detr-detrex_r50_8xb2-50e_coco.py
# Stock mmdet Deformable DETR plus the settings where detrex's model differs from mmdet's
# defaults (the positional encoding, temperature 10000 and offset -0.5, is already the same).
_base_ = 'mmdet::deformable_detr/deformable-detr_r50_16xb2-50e_coco.py'

model = dict(
    # detrex's decoder refines boxes with inverse_sigmoid eps 1e-3 (mmdet 1e-5)
    type='DetrexDeformableDETR',
    # detrex's ChannelMapper convs keep their bias in front of GroupNorm (mmdet: no bias)
    neck=dict(bias=True),
    # detrex's head: inverse_sigmoid eps 1e-3 (mmdet 1e-5); 80 COCO classes in mmdet's order
    bbox_head=dict(type='DetrexDeformableDETRHead', num_classes=80),
    # detrex keeps the top 300 (query, class) scores per image (mmdet: 100)
    test_cfg=dict(max_per_img=300))
custom_imports = dict(imports=['mmdet_ksdetr'], allow_failed_imports=False)
auto_scale_lr = dict(base_batch_size=16)  # detrex trains with 16 images per step
