# KS-Conditional-DETR-R101, 50 epochs: the KS-DETR release checkpoint (edocanonymous/KS-DETR,
# README row "KS-Conditional-DETR-R101"),
# https://drive.google.com/file/d/1amZlGUnBBkrn-HIySklI7A0yB3erDrxk/view?usp=share_link
# published box AP 47.1 (the release's number, COCO val2017; not re-measured here).
# Its inference model is the stock baseline below: the KS teacher streams (sMLP ksgt.*, teacher
# q/k/v rows of the last encoder layer's in_proj) are training-only and dropped by the converter.
# Follows detrex where mmdet differs: the head turns the reference points back into logits
# with inverse_sigmoid eps 1e-3 (mmdet 1e-5) -> DetrexConditionalDETRHead. Everything else is
# mmdet's Conditional DETR (FFN 2048, ReLU, dropout 0.1, 300 queries, top-300 boxes).
#   python tools/model_converters/release_to_mmdet.py ks_conditional_detr_r101.pth \
#       ks-conditional-detr_r101_8xb2-50e_coco.pth --source ks-detr \
#       --config configs/ks_detr/release/ks-conditional-detr-release_r101_8xb2-50e_coco.py
_base_ = '../conditional-detr_r101_8xb2-50e_coco.py'

model = dict(bbox_head=dict(type='DetrexConditionalDETRHead'))
