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
_base_ = ['../kd_detr/kd-detr_deformable-detr_r50_deformable-detr_r18_8xb2-50e_coco.py',
          '../_base_/distill/detr_distill.py']

__losses = _base_.detr_distill.distiller.distill_losses
model = dict(
    _base_.detr_distill,
    architecture=_base_.student,
    teacher=_base_.teacher,
    teacher_ckpt=_base_.teacher_ckpt,
    tprd=False,
    clamp_teacher_boxes=False,  # the TPRD release never clamps teacher boxes
    distiller=dict(
        _base_.detr_distill.distiller,
        distill_losses=dict(
            loss_logits_kd=__losses.loss_logits_kd,
            loss_feat_kd=dict(__losses.loss_feat_kd, loss_weight=2.0),
            loss_teacher_group=dict(__losses.loss_teacher_group, assignment='teacher'))))
