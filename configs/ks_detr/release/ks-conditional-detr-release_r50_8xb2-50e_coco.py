# KS-Conditional-DETR-R50, 50 epochs: the KS-DETR release checkpoint (edocanonymous/KS-DETR,
# README row "KS-Conditional-DETR-R50"),
# https://drive.google.com/file/d/1P971eidVaB0nt9Uhs6tOG79-q98G9eHg/view?usp=share_link
# published box AP 45.3 (the release's number, COCO val2017; not re-measured here).
# Its inference model is the stock baseline below: the KS teacher streams (sMLP ksgt.*, teacher
# q/k/v rows of the last encoder layer's in_proj) are training-only and dropped by the converter.
# Follows detrex where mmdet differs: the head turns the reference points back into logits
# with inverse_sigmoid eps 1e-3 (mmdet 1e-5) -> DetrexConditionalDETRHead. Everything else is
# mmdet's Conditional DETR (FFN 2048, ReLU, dropout 0.1, 300 queries, top-300 boxes).
#   python tools/model_converters/release_to_mmdet.py ks_conditional_detr_r50.pth \
#       ks-conditional-detr_r50_8xb2-50e_coco.pth --source ks-detr \
#       --config configs/ks_detr/release/ks-conditional-detr-release_r50_8xb2-50e_coco.py
_base_ = '../../detrex/conditional-detr-detrex_r50_8xb2-50e_coco.py'
