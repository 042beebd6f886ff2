# DAC-DETR's C-stream on mmdet's Deformable DETR with box refinement and two stages (no CDN):
# the O-stream keeps Deformable DETR's losses, the C-stream (layer-0 sharing, no
# self-attention) is trained one-to-many with the same focal / L1 / GIoU losses. No release
# number exists for this variant.
_base_ = 'mmdet::deformable_detr/deformable-detr-refine-twostage_r50_16xb2-50e_coco.py'
custom_imports = dict(imports=['mmdet_ksdetr'], allow_failed_imports=False)

model = dict(
    type='DACDeformableDETR',
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
