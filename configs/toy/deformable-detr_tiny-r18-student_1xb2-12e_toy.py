# The toy distillers' Deformable DETR student: deformable-detr_tiny-r18_1xb2-12e_toy.py with 20
# queries instead of 30. Test a student extracted with tools/pth_transfer.py from a DETRDistill,
# KD-DETR, QSKD, CrossKD or FitNet / FGD / MGD toy checkpoint with this config:
#   python tools/test.py configs/toy/deformable-detr_tiny-r18-student_1xb2-12e_toy.py student.pth
_base_ = ['./deformable-detr_tiny-r18_1xb2-12e_toy.py']

model = dict(num_queries=20)
