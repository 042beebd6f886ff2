"""Export a DETR-family detector (config + checkpoint) to one ONNX file that plain
onnxruntime runs: standard operators only, the preprocessing stored as metadata, the file
checked and compared with PyTorch before it is moved into place."""
import os
import os.path as osp
import warnings
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch

from mmdet_ksdetr.deployment.preprocess_meta import META_KEY, dumps, preprocess_meta
from mmdet_ksdetr.deployment.wrapper import DetrExportWrapper, UnsupportedDetectorError
from mmdet_ksdetr.utils.checkpoint_io import atomic_output, check_output_path, load_weights_strictly
from mmdet_ksdetr.utils.checks import check_config_path
from mmdet_ksdetr.utils.errors import InputError

DEFAULT_OPSET = 17
MIN_OPSET = 16  # GridSample (deformable attention's sampling) entered ONNX in opset 16
INPUT_NAMES = ['image']
OUTPUT_NAMES = ['boxes', 'scores', 'labels']
#: largest |score| difference between onnxruntime and PyTorch that the export accepts
SCORE_ATOL = 1e-4
#: largest box difference (input pixels) the export accepts: far above float round-off
BOX_ATOL_PX = 0.5


class ExportMismatchError(RuntimeError):
    """onnxruntime and PyTorch disagree on the exported model's output."""


def build_detector(config: str, checkpoint: str, cfg_options: Optional[Dict] = None):
    """The config's detector on CPU in eval mode with the checkpoint loaded strictly.
    Returns ``(cfg, model, checkpoint dict)``; refuses unsupported detectors before loading."""
    from mmengine.config import Config
    from mmengine.logging import MMLogger
    from mmengine.registry import init_default_scope
    cfg = Config.fromfile(check_config_path(config))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if cfg.model.get('_scope_') == 'mmrazor':
        raise UnsupportedDetectorError(
            f'{osp.basename(config)} is a distillation config: convert the checkpoint with '
            f'tools/pth_transfer.py and export it with the student config')
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    from mmdet.registry import MODELS
    MMLogger.get_current_instance().setLevel('WARNING')  # init_weights' long report
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        model = MODELS.build(cfg.model)
    DetrExportWrapper(model)  # refuses an unsupported detector before the checkpoint is read
    ckpt = load_weights_strictly(model, checkpoint)
    return cfg, model.cpu().eval(), ckpt


def dataset_classes(cfg, ckpt, num_classes: int) -> Tuple[list, Optional[list]]:
    """Class names (and palette) from the checkpoint's ``meta.dataset_meta``, else the
    config's test set; their number must be the head's ``num_classes``."""
    meta = (ckpt.get('meta') or {}).get('dataset_meta') or {}
    meta = {k.lower(): v for k, v in meta.items()}
    if 'classes' not in meta:
        from mmdet.registry import DATASETS
        dataset = (cfg.get('test_dataloader') or {}).get('dataset', {})
        meta = dict(dataset.get('metainfo') or {})
        if 'classes' not in meta and dataset.get('type'):
            cls = DATASETS.get(dataset['type'])
            meta = {**getattr(cls, 'METAINFO', {}), **meta}
    classes = list(meta.get('classes') or [])
    if len(classes) != num_classes:
        raise InputError(f'{len(classes)} class names (checkpoint meta.dataset_meta or the '
                         f'config\'s test set) for a head with num_classes={num_classes}: '
                         f'give the config the model was trained with')
    palette = meta.get('palette')
    if palette is not None and (len(palette) != num_classes or isinstance(palette, str)):
        palette = None
    return classes, palette


def input_hw(meta: Dict, shape: Optional[Sequence[int]]) -> Tuple[int, int]:
    """The export (and check) input size: ``shape`` if given, else a 3:4 image resized as the
    test pipeline would, padded to the size divisor."""
    if shape:
        return int(shape[0]), int(shape[1])
    w_scale, h_scale = meta['resize']['scale']
    factor = min(max(w_scale, h_scale) / 4, min(w_scale, h_scale) / 3)
    h, w = int(3 * factor + 0.5), int(4 * factor + 0.5)
    d = meta['pad_size_divisor']
    return -(-h // d) * d, -(-w // d) * d


def output_differences(want, got) -> Tuple[float, float, int]:
    """(max |score diff|, max |box diff| in px, label mismatches) between two (boxes, scores,
    labels) triples; boxes and labels only where the score order is unambiguous (no other
    score within ``SCORE_ATOL``), since tied scores may come out in either order."""
    boxes_a, scores_a, labels_a = [np.asarray(v) for v in want]
    boxes_b, scores_b, labels_b = [np.asarray(v) for v in got]
    score_diff = float(np.abs(scores_a - scores_b).max(initial=0))
    gaps = np.abs(scores_a[:, None] - scores_a[None, :]) + np.eye(len(scores_a)) * 1e9
    clear = gaps.min(1, initial=1e9) > SCORE_ATOL
    box_diff = float(np.abs(boxes_a[clear] - boxes_b[clear]).max(initial=0))
    return score_diff, box_diff, int((labels_a[clear] != labels_b[clear]).sum())


def check_against_pytorch(path: str, wrapper: DetrExportWrapper,
                          shapes: Sequence[Tuple[int, int]]) -> Dict:
    """Run the ONNX file with onnxruntime and the wrapper with PyTorch on seeded random
    images of each shape; raise :class:`ExportMismatchError` if the scores differ by more
    than :data:`SCORE_ATOL`, the boxes by more than :data:`BOX_ATOL_PX` or a label differs.
    Returns the largest differences."""
    import onnxruntime as ort
    sess = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    gen = torch.Generator().manual_seed(0)
    worst = dict(score=0.0, box_px=0.0)
    for h, w in shapes:
        image = torch.randn(1, 3, h, w, generator=gen)
        with torch.no_grad():
            want = [t.numpy() for t in wrapper(image)]
        score, box, labels = output_differences(want, sess.run(None, {'image': image.numpy()}))
        if score > SCORE_ATOL or box > BOX_ATOL_PX or labels:
            raise ExportMismatchError(
                f'onnxruntime and PyTorch disagree at input {h}x{w} (max score difference '
                f'{score:.2e}, max box difference {box:.3f} px, {labels} labels differ): the '
                f'export is not faithful; nothing written')
        worst = dict(score=max(worst['score'], score), box_px=max(worst['box_px'], box))
    return worst


def _write_onnx(tmp: str, wrapper, image, dynamic: bool, opset: int, meta: Dict) -> None:
    import onnx
    dynamic_axes = {'image': {2: 'height', 3: 'width'}} if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # tracer and exporter notes, not the user's business
        # TorchScript-based exporter: torch 2.13's default (dynamo=True) needs onnxscript
        # and torch.export of mmdet's Python-level control flow; tracing handles both.
        torch.onnx.export(wrapper, (image, ), tmp, dynamo=False, opset_version=opset,
                          input_names=INPUT_NAMES, output_names=OUTPUT_NAMES,
                          dynamic_axes=dynamic_axes, do_constant_folding=True)
    model = onnx.load(tmp)
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = META_KEY, dumps(meta)
    onnx.checker.check_model(model)
    custom = sorted({n.domain for n in model.graph.node} - {'', 'ai.onnx'})
    if custom:
        raise ExportMismatchError(f'the graph uses custom operator domains {custom}: '
                                  f'plain onnxruntime could not run it')
    onnx.save(model, tmp)


def export_onnx(config: str, checkpoint: str, out: str, shape: Optional[Sequence[int]] = None,
                dynamic: bool = False, opset: int = DEFAULT_OPSET,
                cfg_options: Optional[Dict] = None) -> Dict:
    """Export ``config`` + ``checkpoint`` to ``out`` (written atomically, only after
    onnxruntime reproduced PyTorch on it). ``shape=(H, W)`` fixes the input size; ``dynamic``
    lets height and width vary (default when no shape is given). Returns a summary dict."""
    check_output_path(out, inputs=[config, checkpoint])
    if opset < MIN_OPSET:
        raise InputError(f'--opset {opset}: at least {MIN_OPSET} is needed (GridSample)')
    if shape is not None and (len(shape) != 2 or min(shape) < 32):
        raise InputError(f'--shape {" ".join(map(str, shape))}: give H W, each at least 32')
    dynamic = dynamic or shape is None
    cfg, model, ckpt = build_detector(config, checkpoint, cfg_options)
    wrapper = DetrExportWrapper(model).eval()
    classes, palette = dataset_classes(cfg, ckpt, model.bbox_head.num_classes)
    meta = preprocess_meta(cfg, classes, palette, static_hw=None if dynamic else shape,
                           detector=type(model).__name__, max_per_img=wrapper.max_per_img)
    h, w = input_hw(meta, shape)
    image = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(0))
    # a second, different size proves that one dynamic file serves both
    shapes = [(h, w), (w, h) if h != w else (h, w + 32)] if dynamic else [(h, w)]
    with atomic_output(out) as tmp:
        _write_onnx(tmp, wrapper, image, dynamic, opset, meta)
        diffs = check_against_pytorch(tmp, wrapper, shapes)
    return dict(out=out, detector=type(model).__name__, dynamic=dynamic, input_hw=(h, w),
                opset=opset, size_mb=os.path.getsize(out) / 2**20, checked_shapes=shapes,
                **diffs)
