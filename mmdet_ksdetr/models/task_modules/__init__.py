"""task_modules of mmdet_ksdetr (registered in mmdet.registry on import)."""
from ...registration import import_submodules

import_submodules(__name__, __path__)
