# KS-DAB-DETR R50, 50 epochs: the KS-DETR release checkpoint (edocanonymous/KS-DETR, README row
# "KS-DAB-DETR-R50", https://drive.google.com/file/d/1TjIGuNlrUg1u2oFkiULpYIZmGqz-ZszC/view),
# published box AP 43.9 (the release's number, COCO val2017).
# Its inference model is the DAB-DETR baseline: the KS teacher streams (sMLP, teacher q/k/v of
# the last encoder layer) are training-only and dropped by the converter:
#   python tools/model_converters/release_to_mmdet.py <ks_dab_detr_r50.pth> \
#       configs/released/ks_detr/ks-dab-detr_r50_8xb2-50e_coco.py <out.pth>
# Follows detrex where mmdet's default differs: the decoder's anchor update uses
# inverse_sigmoid eps 1e-3 (mmdet: 1e-5) -> DetrexDABDETR. Everything else already matches
# mmdet's DAB-DETR: sine positional encoding temperature 20, normalize, scale 2*pi, offset 0,
# (y, x) order; input projection = 1x1 conv with bias, no norm; PReLU FFN 2048, dropout 0;
# decoder post-norm on every layer; box head shared with the anchor update; 300 queries;
# 80 contiguous COCO classes in mmdet's order; top-300 boxes.
_base_ = '../../ks_detr/dab-detr_r50_8xb2-50e_coco.py'

model = dict(type='DetrexDABDETR')
