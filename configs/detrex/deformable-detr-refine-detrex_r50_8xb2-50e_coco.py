# Deformable-DETR R50 + box refinement, 50 epochs, as released by IDEA-Research/detrex:
#   checkpoint  deformable_detr_with_box_refinement_50ep_new.pth
#   download    https://github.com/IDEA-Research/detrex-storage/releases/download/v0.1.1/deformable_detr_with_box_refinement_50ep_new.pth  # noqa: E501
#   box AP 47.0 on COCO val2017 (the release's number, not re-measured here)
# Convert, then test as any mmdet checkpoint:
#   python tools/model_converters/release_to_mmdet.py \
#       deformable_detr_with_box_refinement_50ep_new.pth \
#       deformable-detr-refine_r50_8xb2-50e_coco_detrex.pth --source detrex \
#       --config configs/detrex/deformable-detr-refine-detrex_r50_8xb2-50e_coco.py
# The detrex settings of deformable-detr_r50_8xb2-50e_coco.py with mmdet's box refinement.
_base_ = './deformable-detr-detrex_r50_8xb2-50e_coco.py'

model = dict(with_box_refine=True)
