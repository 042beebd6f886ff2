# KS-DN-DETR-R101, 50 epochs: the KS-DETR release checkpoint (edocanonymous/KS-DETR,
# README row "KS-DN-DETR-R101"),
# https://drive.google.com/file/d/1fd2qTXZnGxocq5m5rc97uFRa0WbhiSJl/view?usp=share_link
# published box AP 46.5 (the release's number, COCO val2017; not re-measured here).
# Its inference model is the stock baseline below: the KS teacher streams (sMLP ksgt.*, teacher
# q/k/v rows of the last encoder layer's in_proj) are training-only and dropped by the converter.
# Follows detrex where mmdet differs: the decoder's anchor update uses inverse_sigmoid eps 1e-3
# -> DetrexDNDETR (DN-DETR = DAB-DETR plus the denoising label encoder, 81 x 255 + indicator).
#   python tools/model_converters/release_to_mmdet.py ks_dn_detr_r101.pth \
#       ks-dn-detr_r101_8xb2-50e_coco.pth --source ks-detr \
#       --config configs/ks_detr/release/ks-dn-detr-release_r101_8xb2-50e_coco.py
_base_ = '../dn-detr_r101_8xb2-50e_coco.py'

model = dict(type='DetrexDNDETR')
