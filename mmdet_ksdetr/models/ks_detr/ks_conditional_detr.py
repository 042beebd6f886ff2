"""KS-Conditional-DETR: Conditional DETR trained with KS-DETR triple attention."""
from mmdet.models.detectors import ConditionalDETR
from mmdet.registry import MODELS

from mmdet_ksdetr.models.ks_detr.ks_detr_mixin import KSDetectorMixin


@MODELS.register_module()
class KSConditionalDETR(KSDetectorMixin, ConditionalDETR):
    """KS-Conditional-DETR (KS-DETR, arXiv 2302.11208, on Conditional DETR).

    The last encoder layer also computes GT-aware teacher streams sharing A or V with the
    student; in ``loss()`` their memories run through the same decoder and head with the same
    reference points, each teacher's last layer getting its own Hungarian matching and losses.
    ``predict()`` is Conditional DETR's.

    Shapes: as :class:`~mmdet.models.detectors.ConditionalDETR`; in ``loss()`` the head also gets
    each teacher's (1, B, Q, C) hidden states with the shared (B, Q, 2) references.
    """
    ks_head_hint = "dict(type='KSConditionalDETRHead', ...)"

    def _ks_teacher_references(self, student, teachers, num_layers, batch_size):
        # Conditional DETR's reference points come from the queries only: one set for all
        return [student] * len(self.ks_teacher_names)
