"""task_modules of mmdet_ksdetr (registered in mmdet.registry)."""
from .one_to_many_assigner import OneToManyAssignResult, OneToManyAssigner

__all__ = ['OneToManyAssignResult', 'OneToManyAssigner']
