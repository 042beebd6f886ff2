# DN-DETR R50, 50 epochs: the detrex model-zoo checkpoint (IDEA-Research/detrex,
# projects/dn_detr README, "DN-DETR-R50", dn_detr_r50_50ep.pth),
# https://github.com/IDEA-Research/detrex-storage/releases/download/v0.1.0/dn_detr_r50_50ep.pth
# published box AP 44.7 (the release's number, COCO val2017; not re-measured here).
# Follows detrex where mmdet differs: the decoder's anchor update uses inverse_sigmoid eps 1e-3
# -> DetrexDNDETR (DN-DETR = DAB-DETR plus the denoising label encoder, 81 x 255 + indicator).
#   python tools/model_converters/release_to_mmdet.py dn_detr_r50_50ep.pth \
#       dn-detr_r50_8xb2-50e_coco_detrex.pth --source detrex \
#       --config configs/detrex/dn-detr-detrex_r50_8xb2-50e_coco.py
_base_ = '../ks_detr/dn-detr_r50_8xb2-50e_coco.py'

model = dict(type='DetrexDNDETR')
