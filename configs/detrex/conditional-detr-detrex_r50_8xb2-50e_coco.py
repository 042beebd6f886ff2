# Conditional-DETR R50, 50 epochs: the detrex model-zoo checkpoint (IDEA-Research/detrex,
# projects/conditional_detr README, "Conditional-DETR-R50", conditional_detr_r50_50ep.pth),
# https://github.com/IDEA-Research/detrex-storage/releases/download/v0.1.0/conditional_detr_r50_50ep.pth
# published box AP 41.6 (the release's number, COCO val2017; not re-measured here).
# Follows detrex where mmdet differs: the head turns the reference points back into logits
# with inverse_sigmoid eps 1e-3 (mmdet 1e-5) -> DetrexConditionalDETRHead. Everything else is
# mmdet's Conditional DETR (FFN 2048, ReLU, dropout 0.1, 300 queries, top-300 boxes).
#   python tools/model_converters/release_to_mmdet.py conditional_detr_r50_50ep.pth \
#       conditional-detr_r50_8xb2-50e_coco_detrex.pth --source detrex \
#       --config configs/detrex/conditional-detr-detrex_r50_8xb2-50e_coco.py
_base_ = '../ks_detr/conditional-detr_r50_8xb2-50e_coco.py'

model = dict(bbox_head=dict(type='DetrexConditionalDETRHead'))
