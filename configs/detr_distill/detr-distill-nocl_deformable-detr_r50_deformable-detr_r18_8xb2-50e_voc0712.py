# Follows the TPRD release (xingyitong1/TPRD) for DETRDistill (no teacher box clamping).
# DETRDistill baseline (TPRD release's setting) on Pascal VOC: Deformable DETR R50 (VOC-trained
# teacher, see configs/detectors/deformable-detr_r50_8xb2-50e_voc0712.py) -> Deformable DETR
# R18, lr 1e-4, 50 epochs with the lr drop at 40 (TPRD's 51,750 iterations / drop at 42,000 at
# batch 16). No CL loss.
# TPRD version: detr-distill-tprd_..._voc0712.py.
#
#   bash tools/dist_train.sh configs/detr_distill/<this file> 8 \
#       --cfg-options model.teacher_ckpt=work_dirs/deformable-detr_r50_8xb2-50e_voc0712/epoch_50.pth
#   python tools/pth_transfer.py --ckpt_path work_dirs/<this>/epoch_50.pth --output_path r18.pth
#   bash tools/dist_test.sh configs/detectors/deformable-detr_r18_8xb2-50e_voc0712.py r18.pth 8
_base_ = ['../kd_detr/kd-detr_deformable-detr_r50_deformable-detr_r18_8xb2-50e_voc0712.py',
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
