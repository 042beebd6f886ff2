# Follows the TPRD release (xingyitong1/TPRD) for DETRDistill (no teacher box clamping).
# DETRDistill baseline in the TPRD release's setting: Deformable DETR R50 (mmdet's released
# teacher, 44.3 AP) -> Deformable DETR R18, 50 epochs, 8 GPUs x 2 images. Hungarian logits
# distillation 1 / 5 / 2, target-aware feature loss 2, teacher group 1 / 5 / 2 supervised with
# the teacher's per-layer GT assignment; no CL loss. The
# DETRDistill release's own setting (with CL) is detr-distill_deformable-detr_r50_deformable-
# detr_r18_8xb2-50e_coco.py beside this file. TPRD version: detr-distill-tprd_..._coco.py.
#
#   bash tools/dist_train.sh configs/detr_distill/<this file> 8
#   python tools/pth_transfer.py --ckpt_path work_dirs/<this>/epoch_50.pth --output_path r18.pth
#   bash tools/dist_test.sh configs/detectors/deformable-detr_r18_16xb2-50e_coco.py r18.pth 8
_base_ = '../kd_detr/kd-detr_deformable-detr_r50_deformable-detr_r18_8xb2-50e_coco.py'

model = dict(
    _delete_=True,
    _scope_='mmrazor',
    type='DETRDistill',
    architecture=_base_.student,
    teacher=_base_.teacher,
    teacher_ckpt=_base_.teacher_ckpt,
    tprd=False,
    clamp_teacher_boxes=False,  # the TPRD release never clamps teacher boxes
    layer_by_layer=True,
    matcher=dict(cls_cost=1.0, l1_cost=5.0, giou_cost=2.0),
    distiller=dict(
        type='ConfigurableDistiller',
        distill_losses=dict(
            loss_logits_kd=dict(type='HungarianLogitKDLoss', loss_cls_weight=1.0,
                                loss_bbox_weight=5.0, loss_iou_weight=2.0),
            loss_feat_kd=dict(type='TargetAwareFeatLoss', loss_weight=2.0, topk=100),
            loss_teacher_group=dict(type='TeacherGroupLoss', assignment='teacher',
                                    loss_weight=1.0))))
