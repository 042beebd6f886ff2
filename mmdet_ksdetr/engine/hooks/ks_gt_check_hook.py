"""Training-data check for KS-DETR configs: fail before the first iteration when the training
pipeline drops the GT boxes the KS teachers need.

KS configs list it in ``custom_hooks``; the KS detectors also check every batch in ``loss()``
(:func:`~mmdet_ksdetr.models.ks_detr.ks_gt_mask.gt_boxes_of`), so a config without the hook
still fails with the same message, only at the first iteration.
"""
from mmengine.hooks import Hook

from mmdet.registry import HOOKS
from mmdet_ksdetr.models.ks_detr.ks_gt_mask import gt_boxes_of

__all__ = ['KSCheckTrainGTHook']


@HOOKS.register_module()
class KSCheckTrainGTHook(Hook):
    """Before training starts, run the first training sample through the pipeline and raise a
    ``ValueError`` that says what to fix if it carries no ``gt_instances.bboxes``."""

    priority = 'VERY_HIGH'

    def before_train(self, runner) -> None:
        dataset = runner.train_dataloader.dataset
        if len(dataset) == 0:
            return
        sample = dataset[0]
        data_samples = sample['data_samples'] if isinstance(sample, dict) else sample
        if not isinstance(data_samples, (list, tuple)):
            data_samples = [data_samples]
        gt_boxes_of(data_samples)
