"""CrossKD: the student's decoder hidden states decoded by the teacher's head, distilled
against the teacher's own predictions.
"""
from .crosskd import CrossKD

__all__ = [
    'CrossKD',
]
