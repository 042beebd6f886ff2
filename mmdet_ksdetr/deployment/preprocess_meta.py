"""What an ONNX runtime needs to feed the exported network as mmdet's test pipeline would:
the resize, the normalisation and the padding of the config, plus the class names. Stored as
JSON in the ONNX file's metadata (key :data:`META_KEY`); ``tools/deployment/onnx_demo.py``
reads it back without torch."""
import json
from typing import Dict, List, Optional, Sequence

from mmdet_ksdetr.utils.errors import InputError

META_KEY = 'mmdet_ksdetr'
META_FORMAT = 'mmdet_ksdetr.onnx.detr/1'


def _pipeline(cfg) -> List[dict]:
    loader = cfg.get('test_dataloader') or cfg.get('val_dataloader')
    dataset = (loader or {}).get('dataset', {})
    while 'pipeline' not in dataset and 'dataset' in dataset:  # dataset wrappers
        dataset = dataset['dataset']
    pipeline = dataset.get('pipeline') or cfg.get('test_pipeline')
    if not pipeline:
        raise InputError('the config has no test pipeline (test_dataloader.dataset.pipeline): '
                         'it is needed for the resize the exported model expects')
    return list(pipeline)


def test_resize(cfg) -> dict:
    """``{'scale': [w, h], 'keep_ratio': bool, 'interpolation': str}`` of the test pipeline's
    ``Resize``; one clear line if the pipeline resizes some other way."""
    resizes = [t for t in _pipeline(cfg) if 'Resize' in str(t.get('type', ''))]
    if len(resizes) != 1 or str(resizes[0]['type']).split('.')[-1] != 'Resize' or \
            'scale' not in resizes[0]:
        found = [t.get('type') for t in resizes] or 'none'
        raise InputError(f'test pipeline resize {found}: export_onnx.py needs exactly one '
                         f'Resize(scale=(w, h), keep_ratio=...) in the test pipeline')
    t = resizes[0]
    scale = t['scale']
    scale = [int(scale), int(scale)] if isinstance(scale, (int, float)) else \
        [int(s) for s in scale]
    return dict(scale=scale, keep_ratio=bool(t.get('keep_ratio', False)),
                interpolation=str(t.get('interpolation', 'bilinear')))


def preprocess_meta(cfg, classes: Sequence[str], palette: Optional[Sequence] = None,
                    static_hw: Optional[Sequence[int]] = None, detector: str = '',
                    max_per_img: int = 100) -> Dict:
    """The metadata dict stored in the ONNX file (all JSON types)."""
    dp = cfg.model.get('data_preprocessor', {})
    mean, std = dp.get('mean'), dp.get('std')
    if mean is None or std is None:
        raise InputError('model.data_preprocessor has no mean/std: the exported model needs '
                         'the normalisation of its config')
    return dict(
        format=META_FORMAT,
        detector=detector,
        input=dict(name='image', layout='NCHW', dtype='float32',
                   static_hw=[int(v) for v in static_hw] if static_hw else None),
        outputs=['boxes', 'scores', 'labels'],
        max_per_img=int(max_per_img),
        resize=test_resize(cfg),
        mean=[float(v) for v in mean],
        std=[float(v) for v in std],
        bgr_to_rgb=bool(dp.get('bgr_to_rgb', False) or dp.get('rgb_to_bgr', False)),
        pad_size_divisor=int(dp.get('pad_size_divisor', 1)),
        pad_value=float(dp.get('pad_value', 0)),
        classes=[str(c) for c in classes],
        palette=[[int(v) for v in c] for c in palette] if palette else None)


def dumps(meta: Dict) -> str:
    return json.dumps(meta, sort_keys=True)
