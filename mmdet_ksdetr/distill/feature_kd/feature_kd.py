"""Feature-imitation baselines for DETRs: FitNet, MGD (MMRazor's losses and connectors) and FGD
(baselines of the TPRD comparisons)."""
from typing import Dict, Optional

from mmrazor.registry import MODELS

from mmdet_ksdetr.distill.feature_kd.fgd_loss import FGDLoss
from mmdet_ksdetr.distill.core.detr_distill_base import DETRDistillBase

__all__ = ['DETRFeatureKD']


@MODELS.register_module()
class DETRFeatureKD(DETRDistillBase):
    """Neck-feature distillation between DETRs (FitNet hints, MGD masked generation, FGD focal
    and global distillation), on the frozen ``eval()`` teacher of :class:`DETRDistillBase`.

    * FitNet and MGD are plain MMRazor: ``ModuleOutputs`` recorders on the neck convs,
      ``ConvModuleConnector`` / ``MGDConnector`` and ``L2Loss`` / ``MGDLoss`` wired by
      ``distiller.loss_forward_mappings``;
    * FGD needs the GT boxes, which recorders cannot reach: losses named in ``fgd_levels``
      (:class:`~mmdet_ksdetr.distill.losses.FGDLoss`) get the student and teacher neck level
      ``fgd_levels[name]`` and the batch's GT from here.

    TPRD refines the teacher's *predictions*; these baselines distil features only, so there
    is nothing to refine and ``tprd=True`` is rejected (the TPRD release has no ``_TPRD``
    variants of them either).

    Shapes: neck levels (B, D, h_l, w_l), equal between student and teacher after connectors.

    Args:
        fgd_levels (dict[str, int]): FGD loss name -> neck level index.
        tprd (bool): must be False (see above).
        **kwargs: :class:`DETRDistillBase` arguments.

    Loss keys: ``distill.<loss name>``.
    """

    DISTILS_PREDICTIONS = False  # neck features only: any head
    SUPPORTS_TPRD = False  # nothing to refine (the TPRD release has no variant either)

    def __init__(self, fgd_levels: Optional[Dict[str, int]] = None, **kwargs):
        self.fgd_levels = dict(fgd_levels or {})  # read by loss_table() in the base __init__
        super().__init__(**kwargs)
        losses = self.distiller.distill_losses
        missing = [n for n in self.fgd_levels if n not in losses]
        if missing:
            raise ValueError(f'DETRFeatureKD: fgd_levels names {missing}, which are not in '
                             f'distiller.distill_losses')
        if not losses:
            raise ValueError('DETRFeatureKD: distiller.distill_losses is empty')

    def loss_table(self) -> Dict[str, type]:
        """The FGD losses named in ``fgd_levels`` (FitNet / MGD are recorder-fed)."""
        return {n: FGDLoss for n in self.fgd_levels}

    def compute_distill_losses(self, student_internals, teacher_internals,
                               batch_data_samples) -> Dict:
        s, t = student_internals, teacher_internals
        gt_bboxes = [d.gt_instances.bboxes for d in batch_data_samples]
        gt_bboxes = [b.tensor if hasattr(b, 'tensor') else b for b in gt_bboxes]
        out = {}
        for name, level in self.fgd_levels.items():
            if not 0 <= level < min(len(s.neck_feats), len(t.neck_feats)):
                raise ValueError(f'DETRFeatureKD: fgd_levels["{name}"] = {level} but the necks '
                                 f'have {len(s.neck_feats)} / {len(t.neck_feats)} levels')
            out[name] = self.losses[name](
                s.neck_feats[level], t.neck_feats[level], gt_bboxes, s.batch_input_shape)
        return out
