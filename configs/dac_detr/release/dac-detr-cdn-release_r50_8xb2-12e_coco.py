# The released DAC-DETR "dac_cdn" model (huzhengdongcs/DAC-DETR), R50, 12 epochs: its own
# two-stage Deformable DETR with box refinement, mixed query selection and look-forward-twice
# (not mmdet's DINO), 900 queries, FFN 2048, torchvision R50 with frozen BN, biased 1x1 input
# projections. Convert a release checkpoint with
#   mmdet_ksdetr.converters.release.convert_checkpoint(PATH, source='dac-detr', cfg=THIS_CONFIG)
# (docs/dac_detr.md, "The released checkpoints").
# Evaluated like the release: class-wise NMS at 0.8 over the top 10000 (query, class) pairs,
# 300 detections kept. Release COCO val AP: 50.0.
_base_ = 'mmdet::deformable_detr/deformable-detr-refine-twostage_r50_16xb2-50e_coco.py'
custom_imports = dict(imports=['mmdet_ksdetr'], allow_failed_imports=False)

model = dict(
    type='ReleaseDACDETR',
    num_queries=900,
    with_box_refine=True,
    as_two_stage=True,
    neck=dict(bias=True),  # the release's input projections are Conv2d(bias=True) + GN
    encoder=dict(layer_cfg=dict(ffn_cfg=dict(feedforward_channels=2048, ffn_drop=0.0))),
    decoder=dict(
        share_first_self_attn=True,  # the release's layer-0 sharing (training only)
        layer_cfg=dict(
            self_attn_cfg=dict(dropout=0.0),
            ffn_cfg=dict(feedforward_channels=2048, ffn_drop=0.0))),
    bbox_head=dict(
        type='DACDeformableDETRHead',
        o2m_rank_tau=None,
        o2m_avg_factor_scale=3.0,
        o2m_match_o_boxes=True),
    train_cfg=dict(
        o2m_assigner=dict(
            type='OneToManyAssigner', iou_weight=0.7, cls_weight=0.3, pos_threshold=0.4,
            max_pos_per_img=75, topk=6)),
    test_cfg=dict(max_per_img=300, nms_pre=10000, nms=dict(type='nms', iou_threshold=0.8)))

# 8 GPUs x 2 images, AdamW 2e-4 (backbone and sampling offsets x0.1), lr drop after epoch 11
train_dataloader = dict(batch_size=2)
max_epochs = 12
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[11],
         gamma=0.1)
]
auto_scale_lr = dict(base_batch_size=16)
