# DAC-DETR on the tiny toy Deformable DETR with box refinement and two stages. Baseline: the
# stock toy config with the same two switches,
#   configs/toy/deformable-detr_tiny-r18_1xb2-12e_toy.py \
#       --cfg-options model.with_box_refine=True model.as_two_stage=True
# Only the DAC pieces differ: the C-stream (layer-0 sharing) with one-to-many assignment; the
# classification loss stays Deformable DETR's focal loss (no rank weights, the "dac_cdn" way).
_base_ = ['../deformable-detr_tiny-r18_1xb2-12e_toy.py']

model = dict(
    type='DACDeformableDETR',
    with_box_refine=True,
    as_two_stage=True,
    decoder=dict(share_first_self_attn=True),
    bbox_head=dict(
        type='DACDeformableDETRHead',
        o2m_rank_tau=None,
        o2m_avg_factor_scale=3.0,
        o2m_match_o_boxes=True),
    train_cfg=dict(
        o2m_assigner=dict(
            type='OneToManyAssigner', iou_weight=0.7, cls_weight=0.3, pos_threshold=0.4,
            max_pos_per_img=75, topk=6)))
