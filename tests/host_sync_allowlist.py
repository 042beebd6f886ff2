"""The places in ``mmdet_ksdetr`` where a host sync (``.item()``, ``.cpu()``, ``.tolist()``,
``nonzero``, ``bool(tensor)`` ...) is allowed, and why: one list for the two checks.

* ``test_device_rules.py`` reads the source: every sync call in the hot-path files must be in
  :data:`SOURCE_SYNCS`, keyed by ``(file, enclosing qualname, call)``;
* ``test_device_audit.py`` runs toy training steps: every sync our code makes there must come
  from a function in :data:`STEP_SYNCS`, keyed by ``(file under the package, function)``.

Each :class:`Site` says which of the two allows it: ``source`` (call name -> reason; empty: the
source check does not list it) and ``step`` (the reason it syncs in a training step; None: it
must not). A new sync fails both tests until someone adds it here with a reason."""
from typing import NamedTuple, Optional

PACKAGE = 'mmdet_ksdetr/'


class Site(NamedTuple):
    path: str  # from the repository root, 'mmdet_ksdetr/...'
    qualname: str  # the enclosing function, 'Class.method' for a method
    source: dict  # sync call in the source -> why it stays (test_device_rules)
    step: Optional[str] = None  # why it syncs in a toy training step (test_device_audit)


HUNGARIAN = 'scipy Hungarian solve: one device->host copy of all costs per call (to_host)'
NUMPY_NONZERO = 'numpy nonzero on host copies (no device)'
SITES = [
    # scipy matchings: the one transfer per call
    Site('mmdet_ksdetr/utils/device.py', 'to_host', {'cpu': HUNGARIAN, 'numpy': HUNGARIAN},
         step='the one transfer of a Hungarian matching call'),
    Site('mmdet_ksdetr/distill/qskd/qskd.py', 'QSKD._hard_negative_pairs',
         {'nonzero': NUMPY_NONZERO}),
    Site('mmdet_ksdetr/distill/qskd/qskd.py', 'QSKD._selected_pairs', {'nonzero': NUMPY_NONZERO}),
    # input validation: one sync per call, raising a readable error instead of a device assert
    Site('mmdet_ksdetr/distill/tprd/refinement.py', '_check_inputs',
         {'tolist': 'TPRD input checks (label range, GT index range) in one sync per call'},
         step='TPRD input checks, one sync'),
    Site('mmdet_ksdetr/models/dac_detr/one_to_many_assigner.py', 'OneToManyAssigner.assign',
         {'tolist': 'label range and finite cost checked together: one sync per image',
          # variable-size outputs: the size must reach the host
          'nonzero': 'positives of one image; their count decides the random cap (randperm)'},
         step='input checks in one sync; variable number of positives'),
    Site('mmdet_ksdetr/models/dac_detr/one_to_many_assigner.py',
         'OneToManyAssigner._raise_bad_labels', {'tolist': 'error message only'}),
    # variable-size outputs: the size must reach the host
    Site('mmdet_ksdetr/models/dn_detr/denoising_head_mixin.py',
         'DenoisingHeadMixin._get_targets_single',
         {'nonzero': 'negative indices, the tuple format of mmdet _get_targets_single '
                     '(as the stock head)'},
         step='negative indices in the tuple format of mmdet'),
    Site('mmdet_ksdetr/distill/tprd/decoupled_kd_loss.py', 'decoupled_kd_loss', {},
         step='TPRD positive rows'),
    # static shapes held as device tensors (mmcv / mmdet read them on the host too)
    Site('mmdet_ksdetr/models/ks_detr/ks_gt_mask.py', 'gt_foreground_token_mask',
         {'tolist': 'only for a tensor spatial_shapes; the KS detectors pass host shapes'}),
    Site('mmdet_ksdetr/models/ks_detr/ks_deformable_triple_attention.py', 'sample_value_levels',
         {'tolist': 'CPU branch only (the CUDA branch calls the kernel)'},
         step='CPU branch only'),
    Site('mmdet_ksdetr/distill/qskd/qskd_feature_loss.py', 'splat_attention',
         {'tolist': 'level sizes of the recorded spatial_shapes tensor, as mmcv reads them'},
         step='level sizes'),
    # once per iteration by design
    Site('mmdet_ksdetr/engine/hooks/divergence_hook.py', 'DivergenceHook.after_train_iter',
         {'tolist': 'all losses and the parameter norm in one sync per iteration'}),
]

#: ``(file, enclosing qualname, call) -> reason``: the sync calls the hot-path source may hold
SOURCE_SYNCS = {(s.path, s.qualname, call): why for s in SITES for call, why in s.source.items()}
#: ``(file under mmdet_ksdetr/, function name) -> reason``: our functions that may sync in a
#: training step (the name as the frame has it, without the class)
STEP_SYNCS = {(s.path[len(PACKAGE):], s.qualname.rsplit('.', 1)[-1]): s.step
              for s in SITES if s.step is not None}
