"""Small helpers shared by the tools: input checks with readable errors, runner building."""
from .checks import (InputError, check_checkpoint, check_config_path, check_data_paths,
                     load_checkpoint_safely)
from .divergence import TrainingDivergedError, check_finite_cost
from .runner import build_runner, shutdown_distributed

__all__ = ['InputError', 'check_checkpoint', 'check_config_path', 'check_data_paths',
           'load_checkpoint_safely', 'build_runner',
           'shutdown_distributed', 'TrainingDivergedError', 'check_finite_cost']
