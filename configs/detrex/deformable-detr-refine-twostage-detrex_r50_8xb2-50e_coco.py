# Deformable-DETR R50 + box refinement + two-stage, 50 epochs, as released by
# IDEA-Research/detrex:
#   checkpoint  deformable_detr_r50_two_stage_50ep_new.pth
#   download    https://github.com/IDEA-Research/detrex-storage/releases/download/v0.1.1/deformable_detr_r50_two_stage_50ep_new.pth  # noqa: E501
#   box AP 48.2 on COCO val2017 (the release's number, not re-measured here)
# Convert, then test as any mmdet checkpoint:
#   python tools/model_converters/release_to_mmdet.py \
#       deformable_detr_r50_two_stage_50ep_new.pth \
#       deformable-detr-refine-twostage_r50_8xb2-50e_coco_detrex.pth --source detrex \
#       --config configs/detrex/deformable-detr-refine-twostage-detrex_r50_8xb2-50e_coco.py
# The detrex settings of deformable-detr_r50_8xb2-50e_coco.py with mmdet's box refinement and
# two-stage proposals (top 300 encoder proposals by their first-class score, as detrex).
_base_ = './deformable-detr-detrex_r50_8xb2-50e_coco.py'

model = dict(with_box_refine=True, as_two_stage=True)
