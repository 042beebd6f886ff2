# Follows the TPRD release (xingyitong1/TPRD) for QSKD (no official QSKD code exists).
# QSKD baseline: Deformable DETR R50 (mmdet's released teacher) -> Deformable DETR R18, 50 epochs,
# 8 GPUs x 2 images. Group query selection (positives through the shared GT, hard negatives with
# GIoU > 0 matched by Hungarian), predictions 1 / 5 / 2 averaged per pair, attention-guided
# feature loss 100 (TPRD's QSKD config).
#
#   bash tools/dist_train.sh configs/qskd/<this file> 8
#   python tools/pth_transfer.py --ckpt_path work_dirs/<this>/epoch_50.pth --output_path r18.pth
#   bash tools/dist_test.sh configs/detectors/deformable-detr_r18_16xb2-50e_coco.py r18.pth 8
_base_ = ['../kd_detr/kd-detr_deformable-detr_r50_deformable-detr_r18_8xb2-50e_coco.py',
          '../_base_/distill/qskd.py']

model = dict(
    _base_.qskd,
    architecture=_base_.student,
    teacher=_base_.teacher,
    teacher_ckpt=_base_.teacher_ckpt,
    init_student_from_teacher=['level_embed'])
