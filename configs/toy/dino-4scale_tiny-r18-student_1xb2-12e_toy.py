# The toy KD-DETR distillers' DINO-4scale student: dino-4scale_tiny-r18_1xb2-12e_toy.py with 20
# queries instead of 30. Test a student extracted with tools/pth_transfer.py from
# configs/toy/kd_detr/kd-detr*_dino-4scale_tiny-r18_1xb2-12e_toy.py with this config:
#   python tools/test.py configs/toy/dino-4scale_tiny-r18-student_1xb2-12e_toy.py student.pth
_base_ = ['./dino-4scale_tiny-r18_1xb2-12e_toy.py']

model = dict(num_queries=20)
