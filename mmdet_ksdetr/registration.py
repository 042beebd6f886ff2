"""Import every module of a package so that the registry decorators in it run.

Each folder under ``mmdet_ksdetr/models`` and ``mmdet_ksdetr/distill`` holds one concept per
file and registers it in mmdet's or mmrazor's registries; ``import mmdet_ksdetr`` imports them
all through this helper, so adding a file is enough to register what it defines.
"""
import importlib
import pkgutil


def import_submodules(package_name, package_path):
    """Import all modules and sub-packages below ``package_name`` (depth first, sorted)."""
    modules = []
    for info in sorted(pkgutil.iter_modules(package_path), key=lambda m: m.name):
        if info.name.startswith('_'):
            continue
        modules.append(importlib.import_module(f'{package_name}.{info.name}'))
    return modules
