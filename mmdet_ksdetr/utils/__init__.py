"""Small helpers shared by the tools: input checks with readable errors."""
from mmdet_ksdetr.utils.checks import (InputError, check_checkpoint, check_config_path,
                                       check_data_paths, load_checkpoint_safely)
from mmdet_ksdetr.utils.divergence import TrainingDivergedError, check_finite_cost

__all__ = ['InputError', 'check_checkpoint', 'check_config_path', 'check_data_paths',
           'load_checkpoint_safely',
           'TrainingDivergedError', 'check_finite_cost']
