# DETRDistill + TPRD on the toy set (the TPRD release's DETRDistill_TPRD setting): Hungarian
# logits distillation against the refined teacher with the decoupled class loss (weight 4),
# target-aware feature loss 2 on the raw teacher, teacher group supervised with the teacher's
# per-layer GT assignment; no CL loss. Student and teacher have 30 queries (TPRD pairs every
# query). The baseline with the same weights: model.tprd=False, loss_cls_weight=1.0.
# Student config (tools/test.py with the tools/pth_transfer.py output):
#   configs/toy/deformable-detr_tiny-r18_1xb2-12e_toy.py
_base_ = ['./detr-distill_deformable-detr_tiny-r18_1xb2-12e_toy.py']

model = dict(
    architecture=dict(num_queries=30),
    tprd=True,
    clamp_teacher_boxes=False,  # the TPRD release never clamps teacher boxes
    distiller=dict(
        distill_losses=dict(
            _delete_=True,
            loss_logits_kd=dict(type='HungarianLogitKDLoss', loss_cls_weight=4.0,
                                loss_bbox_weight=5.0, loss_iou_weight=2.0),
            loss_feat_kd=dict(type='TargetAwareFeatLoss', loss_weight=2.0, topk=100),
            loss_teacher_group=dict(type='TeacherGroupLoss', assignment='teacher',
                                    loss_weight=1.0))))
