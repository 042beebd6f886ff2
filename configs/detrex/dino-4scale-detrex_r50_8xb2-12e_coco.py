# DINO-4scale R50, 12 epochs, as released by IDEA-Research/detrex (projects/dino):
#   checkpoint  dino_r50_4scale_12ep_49_2AP.pth
#   download    https://github.com/IDEA-Research/detrex-storage/releases/download/v0.2.0/dino_r50_4scale_12ep_49_2AP.pth  # noqa: E501
#   box AP 49.2 on COCO val2017 (the release's number, not re-measured here)
# Convert, then test as any mmdet checkpoint:
#   python tools/model_converters/release_to_mmdet.py dino_r50_4scale_12ep_49_2AP.pth \
#       dino-4scale_r50_8xb2-12e_coco_detrex.pth --source detrex \
#       --config configs/detrex/dino-4scale-detrex_r50_8xb2-12e_coco.py
# Stock mmdet DINO plus the settings where detrex's model differs from mmdet's defaults, so
# that the converted weights compute what the release computes (80 COCO classes, same order).
_base_ = 'mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py'

model = dict(
    # detrex's ChannelMapper convs keep their bias in front of GroupNorm (mmdet: no bias)
    neck=dict(bias=True),
    # detrex: PositionEmbeddingSine(temperature=10000, offset=-0.5) (mmdet DINO: 20 and 0.0)
    positional_encoding=dict(num_feats=128, normalize=True, temperature=10000, offset=-0.5),
    # detrex's head turns references into logits with inverse_sigmoid eps 1e-3 (mmdet 1e-5)
    bbox_head=dict(type='DetrexDINOHead', num_classes=80))
custom_imports = dict(imports=['mmdet_ksdetr'], allow_failed_imports=False)
