"""mmdet models added by mmdet_ksdetr (registered in ``mmdet.registry``).

=================  ==================================================================
``detectors/``      KS-DETR detectors (``KS*``), DAC-DETR (``DACDINO``,
                    ``DACDeformableDETR``), the DN baselines (``DNDETR``,
                    ``DNDeformableDETR``) and their mixins
``dense_heads/``    heads that take KS teacher groups / the DAC C-stream in ``loss()``
``layers/``         triple / dual attention, KS encoders, DAC decoder, DN query generator
``task_modules/``   the one-to-many assigner of DAC-DETR
``losses/``         IoU-aware BCE
=================  ==================================================================
"""
from . import dense_heads, detectors, layers, losses, task_modules  # noqa: F401  (registration)

__all__ = ['dense_heads', 'detectors', 'layers', 'losses', 'task_modules']
