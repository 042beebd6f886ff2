"""mmengine hooks of mmdet_ksdetr (registered in mmengine's ``HOOKS``)."""
from mmdet_ksdetr.engine.hooks.checkpoint_hook import CrashSafeCheckpointHook
from mmdet_ksdetr.engine.hooks.divergence_hook import DivergenceHook, describe_divergence
from mmdet_ksdetr.engine.hooks.ks_gt_check_hook import KSCheckTrainGTHook

__all__ = ['CrashSafeCheckpointHook', 'DivergenceHook', 'describe_divergence',
           'KSCheckTrainGTHook']
