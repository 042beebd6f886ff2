# Follows the TPRD release (xingyitong1/TPRD) for D3ETR (no official D3ETR code exists).
# D3ETR baseline on Pascal VOC (the TPRD release's D3DETR "_voc" config): Deformable DETR R50
# (VOC-trained teacher, see configs/detectors/deformable-detr_r50_8xb2-50e_voc0712.py) ->
# Deformable DETR R18, lr 1e-4, 50 epochs with the lr drop at 40, 8 GPUs x 2 images. Same
# distillation settings as the COCO config. TPRD version: d3etr-tprd_..._voc0712.py.
#
#   bash tools/dist_train.sh configs/d3etr/<this file> 8 \
#       --cfg-options model.teacher_ckpt=work_dirs/deformable-detr_r50_8xb2-50e_voc0712/epoch_50.pth
#   python tools/pth_transfer.py --ckpt_path work_dirs/<this>/epoch_50.pth --output_path r18.pth
#   bash tools/dist_test.sh configs/detectors/deformable-detr_r18_8xb2-50e_voc0712.py r18.pth 8
_base_ = ['../kd_detr/kd-detr_deformable-detr_r50_deformable-detr_r18_8xb2-50e_voc0712.py',
          '../_base_/distill/d3etr.py']

model = dict(
    _base_.d3etr,
    architecture=_base_.student,
    teacher=_base_.teacher,
    teacher_ckpt=_base_.teacher_ckpt,
    init_student_from_teacher=['level_embed'])
