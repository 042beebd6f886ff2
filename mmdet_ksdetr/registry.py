"""The ``mmdet_ksdetr`` registry scope: one child of every mmdet registry.

mmengine tags everything a ``_base_ = 'mmdet_ksdetr::<dir>/<config>.py'`` brings in with
``_scope_='mmdet_ksdetr'`` and builds it in the registry of that scope, which it finds by
importing ``mmdet_ksdetr.registry`` and searching the registry tree. These registries hold
nothing of their own: each is a child of mmdet's registry of the same kind, so a look-up falls
back to mmdet's (our models, layers, losses and hooks register there) and then to mmengine's
(``mmrazor.``-prefixed types are found through the root as usual). A user config inheriting one
of this package's configs therefore builds exactly as the config itself does.
"""
from mmdet import registry as _mmdet_registry
from mmengine.registry import Registry

SCOPE = 'mmdet_ksdetr'


def _children_of_mmdet_registries():
    children = {}
    for attr, parent in sorted(vars(_mmdet_registry).items()):
        if isinstance(parent, Registry) and parent.scope == 'mmdet':
            children[attr] = Registry(parent.name, parent=parent, scope=SCOPE,
                                      locations=['mmdet_ksdetr'])
    return children


globals().update(_children_of_mmdet_registries())
__all__ = sorted(k for k, v in globals().items() if isinstance(v, Registry))
