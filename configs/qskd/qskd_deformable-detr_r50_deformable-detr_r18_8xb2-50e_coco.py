# Follows the TPRD release (xingyitong1/TPRD) for QSKD (no official QSKD code exists).
# QSKD baseline: Deformable DETR R50 (mmdet's released teacher) -> Deformable DETR R18, 50 epochs,
# 8 GPUs x 2 images. Group query selection (positives through the shared GT, hard negatives with
# GIoU > 0 matched by Hungarian), predictions 1 / 5 / 2 averaged per pair, attention-guided
# feature loss 100 on the encoder memory (TPRD's QSKD config).
#
#   bash tools/dist_train.sh configs/qskd/<this file> 8
#   python tools/pth_transfer.py --ckpt_path work_dirs/<this>/epoch_50.pth --output_path r18.pth
#   bash tools/dist_test.sh configs/detectors/deformable-detr_r18_16xb2-50e_coco.py r18.pth 8
_base_ = '../kd_detr/kd-detr_deformable-detr_r50_deformable-detr_r18_8xb2-50e_coco.py'

model = dict(
    _delete_=True,
    _scope_='mmrazor',
    type='QSKD',
    architecture=_base_.student,
    teacher=_base_.teacher,
    teacher_ckpt=_base_.teacher_ckpt,
    tprd=False,
    layer_by_layer=True,
    matcher=dict(cls_cost=1.0, l1_cost=5.0, giou_cost=2.0),
    hard_negative_giou=0.0,
    layer_pairing='release',  # 'same_layer': each layer's attention with its own selection
    init_student_from_teacher=['level_embed'],
    distiller=dict(
        type='ConfigurableDistiller',
        distill_losses=dict(
            loss_pred=dict(type='PairKDLoss', loss_cls_weight=1.0, loss_bbox_weight=5.0,
                           loss_iou_weight=2.0, normalizer='pairs'),
            # encoder memory under the selected teacher queries' cross-attention
            loss_feat=dict(type='AttnGuidedFeatureLoss', loss_weight=100.0, splat='bilinear',
                           normalize='all_levels', features='memory'))))
