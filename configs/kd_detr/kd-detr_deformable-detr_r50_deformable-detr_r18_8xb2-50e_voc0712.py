# Follows the TPRD release (xingyitong1/TPRD) for KD-DETR (weights, schedule, layer i <- layer i).
# KD-DETR baseline on Pascal VOC: Deformable DETR R50 (VOC-trained teacher, see
# configs/detectors/deformable-detr_r50_8xb2-50e_voc0712.py) -> Deformable DETR R18, 50 epochs
# (lr drop at 40), lr 1e-4, 8 GPUs x 2 images. Same distillation settings as the COCO config.
#
#   bash tools/dist_train.sh configs/kd_detr/<this file> 8 \
#       --cfg-options model.teacher_ckpt=work_dirs/deformable-detr_r50_8xb2-50e_voc0712/epoch_50.pth
#   python tools/pth_transfer.py --ckpt_path work_dirs/<this>/epoch_50.pth --output_path r18.pth
#   bash tools/dist_test.sh configs/detectors/deformable-detr_r18_8xb2-50e_voc0712.py r18.pth 8
_base_ = ['../detectors/deformable-detr_r18_8xb2-50e_voc0712.py', '../_base_/distill/kd_detr.py']

teacher_ckpt = 'work_dirs/deformable-detr_r50_8xb2-50e_voc0712/epoch_50.pth'

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

find_unused_parameters = True
