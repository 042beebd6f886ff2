# Follows the TPRD release (xingyitong1/TPRD) for D3ETR (no official D3ETR code exists).
# D3ETR baseline: Deformable DETR R50 (mmdet's released teacher) -> Deformable DETR R18, 50
# epochs, 8 GPUs x 2 images. Adaptive (Hungarian) and fixed (teacher queries) matching,
# predictions 1 / 5 / 2, self-attention 1e4, cross-attention 1e3 (TPRD's D3ETR config).
#
#   bash tools/dist_train.sh configs/d3etr/<this file> 8
#   python tools/pth_transfer.py --ckpt_path work_dirs/<this>/epoch_50.pth --output_path r18.pth
#   bash tools/dist_test.sh configs/detectors/deformable-detr_r18_16xb2-50e_coco.py r18.pth 8
_base_ = ['../kd_detr/kd-detr_deformable-detr_r50_deformable-detr_r18_8xb2-50e_coco.py',
          '../_base_/distill/d3etr.py']

model = dict(
    _base_.d3etr,
    architecture=_base_.student,
    teacher=_base_.teacher,
    teacher_ckpt=_base_.teacher_ckpt,
    init_student_from_teacher=['level_embed'])
