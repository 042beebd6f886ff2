"""mmdet models added by mmdet_ksdetr; every module below registers in ``mmdet.registry``."""
from ..registration import import_submodules

import_submodules(__name__, __path__)
