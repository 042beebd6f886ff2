"""MMRazor distillation for DETRs; every module below registers in ``mmrazor.registry``."""
from ..registration import import_submodules

import_submodules(__name__, __path__)
