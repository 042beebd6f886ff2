"""mmdet_ksdetr: new DETR training ideas for MMDetection 3.x.

Importing the package applies the compatibility shims for the pinned OpenMMLab stack on a
modern torch (:mod:`mmdet_ksdetr.compat`) and registers every model, layer, loss and
distillation algorithm in the mmdet / mmrazor registries. Configs load it with
``custom_imports = dict(imports=['mmdet_ksdetr'], allow_failed_imports=False)``.
"""
# isort: skip_file  (order matters: warnings filtered, then compat applied, then registration)
from mmdet_ksdetr import quiet

quiet.filter_third_party_warnings()  # before torch / mmengine are imported

from mmdet_ksdetr.version import __version__  # noqa: E402
from mmdet_ksdetr import compat  # noqa: E402

compat.apply_all()

from mmdet_ksdetr import models  # noqa: E402,F401  (registers mmdet modules)
from mmdet_ksdetr import distill  # noqa: E402,F401  (registers mmrazor modules)
from mmdet_ksdetr import engine  # noqa: E402,F401  (registers CrashSafeRunner and the hooks)

__all__ = ['__version__', 'compat']
