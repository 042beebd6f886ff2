"""mmdet's ``DetInferencer`` with this library's checkpoint loading: ``weights_only`` (no
environment variable can switch it off) and strict (a checkpoint that does not fit the config
is an error naming the keys, not random weights with a warning)."""
import copy
import logging
import warnings
from typing import Dict, Optional, Tuple

from mmdet.apis import DetInferencer
from mmdet.evaluation import get_classes
from mmdet.registry import DATASETS, MODELS
from mmengine.dataset import pseudo_collate
from mmengine.logging import print_log
from mmengine.registry import FUNCTIONS

from mmdet_ksdetr.utils.checkpoint_io import load_weights_strictly


def config_test_metainfo(cfg) -> Dict:
    """The ``metainfo`` (classes, palette) of the config's test set (else its val set), read
    without loading annotations; ``{}`` when the config has no such data set or it cannot be
    built lazily (an unregistered type, a wrapper without ``lazy_init``)."""
    loader = cfg.get('test_dataloader') or cfg.get('val_dataloader')
    if not loader or 'dataset' not in loader:
        return {}
    ds_cfg = copy.deepcopy(loader['dataset'])
    ds_cfg['lazy_init'] = True
    try:
        return dict(DATASETS.build(ds_cfg).metainfo)
    except (KeyError, TypeError, ValueError, FileNotFoundError):
        return {}


def choose_classes(meta: Dict, cfg_metainfo: Dict,
                   source: Optional[str]) -> Tuple[Tuple[str, ...], Optional[str]]:
    """Class names for drawing and for the JSON labels, and the one line that says why when
    they do not come from the checkpoint. ``meta`` is the checkpoint's ``meta`` ({} without a
    checkpoint), ``cfg_metainfo`` the config's test-set metainfo, ``source`` names the
    checkpoint (None: no checkpoint). Order: ``meta.dataset_meta.classes`` (mmdet 3.x, silent),
    ``meta.CLASSES`` (mmdet 2.x, silent), the config's test-set classes, COCO's 80 classes.
    Returns ``(classes, note)``; ``note`` is None when the checkpoint named the classes."""
    dataset_meta = {k.lower(): v for k, v in (meta.get('dataset_meta') or {}).items()}
    if dataset_meta.get('classes'):
        return tuple(dataset_meta['classes']), None
    if meta.get('CLASSES'):
        return tuple(meta['CLASSES']), None
    why = (f'{source} has no class names in its meta (meta.dataset_meta.classes)'
           if source else 'no checkpoint given (random weights)')
    if cfg_metainfo.get('classes'):
        classes = tuple(cfg_metainfo['classes'])
        where = "the config's test set"
    else:
        classes = tuple(get_classes('coco'))
        where = "COCO (the config's test set names none)"
    shown = ', '.join(classes[:5]) + (', ...' if len(classes) > 5 else '')
    return classes, f'{why}: labelling with the {len(classes)} classes of {where}: {shown}'


class SafeDetInferencer(DetInferencer):
    """``DetInferencer(model=CONFIG, weights=CHECKPOINT, device=...)`` for the configs of this
    library (and any mmdet config). The model is built from the config, then the checkpoint's
    ``state_dict`` is loaded strictly through the safe loader. Class names come from the
    checkpoint's ``meta.dataset_meta.classes`` (or mmdet 2.x ``meta.CLASSES``) without a word;
    a checkpoint without them is labelled with the config's test-set classes, and one log line
    says so. Inputs and outputs are those of ``DetInferencer`` (images in, ``DetDataSample``
    predictions with ``bboxes`` (N, 4) xyxy in pixels, ``scores`` (N,), ``labels`` (N,) out)."""

    def _init_model(self, cfg, weights, device='cpu'):
        if not cfg:
            raise ValueError('SafeDetInferencer needs a config (model=CONFIG): it does not '
                             'read the config out of the checkpoint')
        cfg.model.pop('pretrained', None)  # the checkpoint supplies every weight
        model = MODELS.build(cfg.model)
        model.cfg = cfg
        meta = {}
        if weights is not None:
            ckpt = load_weights_strictly(model, weights)
            meta = (ckpt.get('meta') if isinstance(ckpt, dict) else None) or {}
        cfg_metainfo = config_test_metainfo(cfg)
        classes, note = choose_classes(meta, cfg_metainfo,
                                       f'checkpoint "{weights}"' if weights else None)
        if note:
            print_log(note, logger='current', level=logging.WARNING)
        dataset_meta = {k.lower(): v for k, v in (meta.get('dataset_meta') or {}).items()}
        dataset_meta['classes'] = classes
        if self.palette != 'none':
            dataset_meta['palette'] = self.palette
        elif cfg_metainfo.get('palette') is not None:
            dataset_meta['palette'] = cfg_metainfo['palette']
        dataset_meta.setdefault('palette', 'random')
        model.dataset_meta = dataset_meta
        return model.to(device).eval()

    def _init_visualizer(self, cfg):
        with warnings.catch_warnings():
            # the config's LocalVisBackend has no save_dir here; the inferencer writes its
            # drawings itself (out_dir/vis), so the backend is not needed
            warnings.filterwarnings('ignore', message=r'Failed to add .*LocalVisBackend')
            return super()._init_visualizer(cfg)

    def _init_collate(self, cfg):
        # mmdet registers no collate functions of its own, so looking them up under the
        # "mmdet" scope only logs a scope warning; mmengine's registry holds them all
        collate = (cfg.get('test_dataloader') or {}).get('collate_fn')
        if collate is None:
            return pseudo_collate
        name = collate.get('type') if isinstance(collate, dict) else collate
        fn = FUNCTIONS.get(name)
        if fn is None:
            raise ValueError(f'test_dataloader.collate_fn "{name}" is not a registered '
                             'function: register it in mmengine.registry.FUNCTIONS')
        return fn
