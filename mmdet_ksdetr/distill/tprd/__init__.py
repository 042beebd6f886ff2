"""TPRD (teacher prediction refinement): the switch every distiller composes, the vectorised
refinement of the teacher targets and the decoupled class KD loss.
"""
from .decoupled_kd_loss import DecoupledKDLoss
from .refinement import RefinedTeacher, TeacherPredictionRefiner
from .tprd_switch import TPRD, TeacherTargets

__all__ = [
    'DecoupledKDLoss', 'RefinedTeacher', 'TeacherPredictionRefiner', 'TPRD', 'TeacherTargets',
]
