# DAB-DETR R50, 50 epochs: the detrex model-zoo checkpoint (IDEA-Research/detrex,
# projects/dab_detr README, "DAB-DETR-R50" 50 ep, dab_detr_r50_50ep.pth,
# https://github.com/IDEA-Research/detrex-storage/releases/download/v0.1.0/dab_detr_r50_50ep.pth),
# published box AP 43.3 (the release's number, COCO val2017). The teacher of TPRD.
#   python tools/model_converters/release_to_mmdet.py dab_detr_r50_50ep.pth \
#       dab-detr_r50_8xb2-50e_coco_detrex.pth --source detrex \
#       --config configs/detrex/dab-detr-detrex_r50_8xb2-50e_coco.py
# Follows detrex where mmdet's default differs: the decoder's anchor update uses
# inverse_sigmoid eps 1e-3 (mmdet: 1e-5) -> DetrexDABDETR. Everything else already matches
# mmdet's DAB-DETR (sine encoding temperature 20, normalize, (y, x) order; 1x1 input conv with
# bias; PReLU FFN 2048, dropout 0; decoder post-norm; shared box head; 300 queries; 80 classes).
_base_ = '../ks_detr/dab-detr_r50_8xb2-50e_coco.py'

model = dict(type='DetrexDABDETR')
