# The released DAC-DETR architecture (configs/dac_detr/release/) on the tiny toy Deformable DETR:
# two-stage, box refinement, mixed query selection (learned content queries), biased input
# projections, no dropout and the release's test-time NMS at 0.8.
_base_ = ['../deformable-detr_tiny-r18_1xb2-12e_toy.py']

model = dict(
    type='ReleaseDACDETR',
    with_box_refine=True,
    as_two_stage=True,
    neck=dict(bias=True),
    encoder=dict(layer_cfg=dict(ffn_cfg=dict(ffn_drop=0.0))),
    decoder=dict(
        share_first_self_attn=True,
        layer_cfg=dict(self_attn_cfg=dict(dropout=0.0), ffn_cfg=dict(ffn_drop=0.0))),
    bbox_head=dict(type='DACDeformableDETRHead', o2m_avg_factor_scale=3.0),
    train_cfg=dict(
        o2m_assigner=dict(
            type='OneToManyAssigner', iou_weight=0.7, cls_weight=0.3, pos_threshold=0.4,
            max_pos_per_img=75, topk=6)),
    test_cfg=dict(max_per_img=30, nms_pre=1000, nms=dict(type='nms', iou_threshold=0.8)))
