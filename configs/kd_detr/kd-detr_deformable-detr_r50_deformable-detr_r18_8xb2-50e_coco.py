# Follows the TPRD release (xingyitong1/TPRD) for KD-DETR (weights, schedule, layer i <- layer i).
# KD-DETR baseline: Deformable DETR R50 (teacher: mmdet's released checkpoint, 44.3 AP) ->
# Deformable DETR R18 (student), 50 epochs, 8 GPUs x 2 images (total batch 16 as in the TPRD
# release). 300 random "general" + the teacher's 300 "specific" distillation points, T = 10,
# foreground re-weighting, weights 2 / 5 / 2 for both groups; the student starts from the
# teacher's level embeddings (TPRD's merge_weight.py). TPRD version: the "-tprd" config.
#
#   bash tools/dist_train.sh configs/kd_detr/<this file> 8
#   python tools/pth_transfer.py --ckpt_path work_dirs/<this>/epoch_50.pth --output_path r18.pth
#   bash tools/dist_test.sh configs/detectors/deformable-detr_r18_16xb2-50e_coco.py r18.pth 8
_base_ = ['../detectors/deformable-detr_r18_16xb2-50e_coco.py', '../_base_/distill/kd_detr.py']

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v3.0/deformable_detr/deformable-detr_r50_16xb2-50e_coco/deformable-detr_r50_16xb2-50e_coco_20221029_210934-6bc7d21b.pth'  # noqa

student = dict(_base_.model, _scope_='mmdet')
teacher = dict(
    _base_.model,
    _scope_='mmdet',
    backbone=dict(_base_.model['backbone'], depth=50, init_cfg=None),
    neck=dict(_base_.model['neck'], in_channels=[512, 1024, 2048]))

model = dict(
    _base_.kd_detr,
    architecture=student,
    teacher=teacher,
    teacher_ckpt=teacher_ckpt,
    init_student_from_teacher=['level_embed'])

train_dataloader = dict(batch_size=2)
auto_scale_lr = dict(base_batch_size=16)
find_unused_parameters = True
