# The toy KD-DETR distillers' DAB-DETR student: dab-detr_tiny-r18_1xb2-12e_toy.py with 20 queries
# instead of 30. Test a student extracted with tools/pth_transfer.py from
# configs/toy/kd_detr/kd-detr*_dab-detr_tiny-r18_1xb2-12e_toy.py with this config:
#   python tools/test.py configs/toy/dab-detr_tiny-r18-student_1xb2-12e_toy.py student.pth
_base_ = ['./dab-detr_tiny-r18_1xb2-12e_toy.py']

model = dict(num_queries=20)
