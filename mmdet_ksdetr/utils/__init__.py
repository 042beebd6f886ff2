"""Small helpers shared by the tools: input checks with readable errors."""
from .checks import (InputError, check_checkpoint, check_config_path, check_data_paths,
                     load_checkpoint_safely)

__all__ = ['InputError', 'check_checkpoint', 'check_config_path', 'check_data_paths',
           'load_checkpoint_safely']
