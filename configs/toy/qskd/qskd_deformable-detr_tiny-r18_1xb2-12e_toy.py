# QSKD on the toy set: tiny Deformable DETR teacher (30 queries) and student (20 queries); group
# query selection (positives through the shared GT, hard negatives matched by Hungarian) with
# predictions 1 / 5 / 2 averaged per pair, attention-guided feature loss 100
# on the encoder memory.
# TPRD variant: qskd-tprd_deformable-detr_tiny-r18_1xb2-12e_toy.py.
#
#   PORT=29641 bash tools/dist_train.sh \
#       configs/toy/qskd/qskd_deformable-detr_tiny-r18_1xb2-12e_toy.py 2
# Student config (tools/test.py with the tools/pth_transfer.py output):
#   configs/toy/deformable-detr_tiny-r18-student_1xb2-12e_toy.py
# Teacher, student (20 queries) and teacher_ckpt: those of the KD-DETR toy config.
_base_ = ['../kd_detr/kd-detr_deformable-detr_tiny-r18_1xb2-12e_toy.py']

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
    distiller=dict(
        type='ConfigurableDistiller',
        distill_losses=dict(
            loss_pred=dict(type='PairKDLoss', loss_cls_weight=1.0, loss_bbox_weight=5.0,
                           loss_iou_weight=2.0, normalizer='pairs'),
            # encoder memory under the selected teacher queries' cross-attention
            loss_feat=dict(type='AttnGuidedFeatureLoss', loss_weight=100.0, splat='bilinear',
                           normalize='all_levels', features='memory'))))

find_unused_parameters = True
