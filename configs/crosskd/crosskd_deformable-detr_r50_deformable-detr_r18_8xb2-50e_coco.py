# Follows the TPRD release (xingyitong1/TPRD) for CrossKD (its DETR variant; no TPRD version).
# CrossKD: Deformable DETR R50 (teacher: mmdet's released checkpoint, 44.3 AP) -> Deformable
# DETR R18, single-stage, 300 queries, 6 + 6 layers, 50 epochs, 8 GPUs x 2 images (total batch
# 16). The teacher's decoder and head read the student's encoder memory; their predictions learn
# the teacher's own per layer after a 1 / 5 / 2 distillation matching (BCE / L1 / GIoU 1 / 5 / 2,
# every layer). The student's decoder and head learn from the GT only.
#
#   bash tools/dist_train.sh configs/crosskd/<this file> 8
#   python tools/pth_transfer.py --ckpt_path work_dirs/<this>/epoch_50.pth --output_path r18.pth
#   bash tools/dist_test.sh configs/detectors/deformable-detr_r18_16xb2-50e_coco.py r18.pth 8
_base_ = ['../kd_detr/kd-detr_deformable-detr_r50_deformable-detr_r18_8xb2-50e_coco.py',
          '../_base_/distill/crosskd.py']

model = dict(
    _base_.crosskd,
    architecture=_base_.student,
    teacher=_base_.teacher,
    teacher_ckpt=_base_.teacher_ckpt,
    init_student_from_teacher=['level_embed'])  # TPRD's merge_weight.py
