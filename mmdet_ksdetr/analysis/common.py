"""What every analysis tool (``tools/analysis_tools/{query_affinity,ks_attention,
teacher_layers}.py``) shares: the ``CONFIG CHECKPOINT [--compare CONFIG2 CKPT2]`` command line,
a strictly loaded model in eval mode, the first ``--num-images`` images of the config's
validation set (its own test pipeline) with mmengine's progress bar, and atomic PNG / JSON
output.

Errors a user can fix are :class:`~mmdet_ksdetr.utils.errors.InputError`; :func:`run_main`
turns them into one line ``<tool>: error: ...`` and exit status 2.
"""
import argparse
import io
import json
import os
import os.path as osp
import sys
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional

import torch
from torch import Tensor

from mmdet_ksdetr.utils.checkpoint_io import atomic_write, load_weights_strictly
from mmdet_ksdetr.utils.checks import check_config_path, check_data_paths
from mmdet_ksdetr.utils.errors import InputError

__all__ = ['LoadedModel', 'add_common_args', 'load_model', 'load_models', 'val_batches',
           'val_pipeline', 'gt_loaded_after_resize', 'gt_boxes_in_input_frame',
           'gt_boxes_in_original_frame', 'write_json', 'save_figure', 'run_main',
           'unwrap_detector']


@dataclass
class LoadedModel:
    """A detector built from ``config`` with ``checkpoint`` loaded strictly, in eval mode.

    Attributes:
        label: short name for legends and JSON keys (the config's file name without ``.py``
            unless given).
        config: path of the config file.
        checkpoint: path of the checkpoint.
        cfg: the parsed :class:`mmengine.config.Config` (``--cfg-options`` merged).
        model: the detector (for a distiller checkpoint: the whole algorithm; see
            :func:`unwrap_detector`).
    """
    label: str
    config: str
    checkpoint: str
    cfg: object
    model: torch.nn.Module


def add_common_args(parser: argparse.ArgumentParser, default_num_images: int = 50) -> None:
    """``config checkpoint --compare C2 K2 --labels --num-images --out-dir --device
    --cfg-options`` on ``parser``."""
    from mmdet_ksdetr.utils.cfg_options import CfgOptionsAction
    parser.add_argument('config', help='config file of the model')
    parser.add_argument('checkpoint', help='checkpoint file (or http(s) URL)')
    parser.add_argument('--compare', nargs=2, metavar=('CONFIG2', 'CHECKPOINT2'),
                        help='a second model drawn on the same figures (e.g. the baseline)')
    parser.add_argument('--labels', nargs='+', metavar='LABEL',
                        help='legend names, one per model (default: config file names)')
    parser.add_argument('--num-images', type=int, default=default_num_images,
                        help=f'first N images of the validation set (default '
                        f'{default_num_images}; 0 = all)')
    parser.add_argument('--out-dir', required=True, help='folder for the PNG and JSON files')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu',
                        help='cpu, cuda or cuda:N (default: cuda when available)')
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction,
                        help='override config keys, e.g. data_root=data/coco/ (moves every '
                        'data path of the config)')


def _label(config: str) -> str:
    return osp.splitext(osp.basename(config))[0]


def load_model(config: str, checkpoint: str, device: str = 'cpu',
               cfg_options: Optional[Dict] = None, label: Optional[str] = None) -> LoadedModel:
    """Build ``config``'s model and load ``checkpoint`` into it strictly (a checkpoint that
    does not fit names the missing / unexpected keys in one line)."""
    import mmdet_ksdetr  # noqa: F401  (registration and compat shims)
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from mmdet_ksdetr.utils.data_root import merge_cfg_options
    cfg = Config.fromfile(check_config_path(config))
    merge_cfg_options(cfg, cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    if cfg.model.get('_scope_') == 'mmrazor':
        from mmrazor.registry import MODELS
        cfg.model.teacher_ckpt = None  # the checkpoint holds the teacher's weights too
    else:
        from mmdet.registry import MODELS
    model = MODELS.build(cfg.model)
    load_weights_strictly(model, checkpoint,
                          source=f'checkpoint "{checkpoint}" for config "{config}"')
    try:
        model = model.to(device)
    except (RuntimeError, AssertionError) as e:
        raise InputError(f'--device {device}: {str(e).splitlines()[0]}') from e
    model.eval()
    return LoadedModel(label or _label(config), config, checkpoint, cfg, model)


def load_models(args) -> List[LoadedModel]:
    """The model of ``args.config`` / ``args.checkpoint`` and, with ``--compare``, the second
    one; ``--labels`` must give one distinct label per model."""
    pairs = [(args.config, args.checkpoint)]
    if args.compare:
        pairs.append(tuple(args.compare))
    labels = args.labels or [_label(c) for c, _ in pairs]
    if args.labels is None and len(set(labels)) != len(labels):
        labels = ['model', 'compare']
    if len(labels) != len(pairs):
        raise InputError(f'{len(labels)} --labels for {len(pairs)} models: give one label per '
                         f'model')
    if len(set(labels)) != len(labels):
        raise InputError(f'--labels must differ, got {labels}')
    return [load_model(c, k, args.device, args.cfg_options, label)
            for (c, k), label in zip(pairs, labels)]


def unwrap_detector(model: torch.nn.Module) -> torch.nn.Module:
    """The detector inside ``model``: itself, or an mmrazor distiller's student."""
    from mmdet.models.detectors.base import BaseDetector
    if isinstance(model, BaseDetector):
        return model
    student = getattr(model, 'student', None)
    if isinstance(student, BaseDetector):
        return student
    raise InputError(f'{type(model).__name__} is not an mmdet detector nor a distiller with '
                     f'a student detector')


def _val_loader(cfg):
    """The dataloader config the analysis reads: ``val_dataloader``, else ``test_dataloader``."""
    loader = cfg.get('val_dataloader') or cfg.get('test_dataloader')
    if not loader:
        raise InputError('the config has no val_dataloader (nor test_dataloader) to take '
                         'images from')
    return loader


def val_pipeline(cfg) -> List:
    """The transforms of the data set :func:`val_batches` reads."""
    return _val_loader(cfg)['dataset']['pipeline']


def _val_dataset(cfg):
    from mmdet.registry import DATASETS
    loader = _val_loader(cfg)
    check_data_paths(cfg, loaders=('val_dataloader',) if cfg.get('val_dataloader') else
                     ('test_dataloader',))
    return DATASETS.build(loader['dataset'])


def gt_loaded_after_resize(pipeline) -> bool:
    """Whether a test pipeline loads the GT boxes after its first ``Resize`` (mmdet's test
    pipelines do: the boxes stay in original-image pixels) rather than before it (the boxes
    are resized with the image: input pixels). An InputError when it loads no annotations."""
    types = [t.get('type') if isinstance(t, dict) else type(t).__name__ for t in pipeline]
    load = [i for i, t in enumerate(types) if t == 'LoadAnnotations']
    resize = [i for i, t in enumerate(types) if t and 'Resize' in t]
    if not load:
        raise InputError('the validation pipeline has no LoadAnnotations: the analysis needs '
                         'the GT boxes of the validation images')
    return bool(resize) and load[0] > resize[0]


def _gt_boxes(data_sample) -> Tensor:
    boxes = data_sample.gt_instances.bboxes
    return (boxes.tensor if hasattr(boxes, 'tensor') else boxes).float()


def gt_boxes_in_input_frame(data_sample, pipeline) -> Tensor:
    """The GT boxes of a :func:`val_batches` data sample in input (resized) pixels: scaled by
    ``scale_factor`` when ``pipeline`` loads them after ``Resize``, as they are otherwise."""
    boxes = _gt_boxes(data_sample)
    if gt_loaded_after_resize(pipeline):
        sx, sy = data_sample.scale_factor
        boxes = boxes * boxes.new_tensor([sx, sy, sx, sy])
    return boxes


def gt_boxes_in_original_frame(data_sample, pipeline) -> Tensor:
    """The GT boxes of a :func:`val_batches` data sample in original-image pixels: as they
    are when ``pipeline`` loads them after ``Resize``, divided by ``scale_factor`` otherwise."""
    boxes = _gt_boxes(data_sample)
    if not gt_loaded_after_resize(pipeline):
        sx, sy = data_sample.scale_factor
        boxes = boxes / boxes.new_tensor([sx, sy, sx, sy])
    return boxes


def val_batches(cfg, num_images: int, device: str = 'cpu', batch_size: int = 1,
                progress: bool = True) -> Iterator[Dict]:
    """The first ``num_images`` (all for 0) images of ``cfg``'s validation set through its
    test pipeline, in batches of ``batch_size`` collated for ``model.data_preprocessor``
    (``dict(inputs=[...], data_samples=[...])``, ground truth included), with mmengine's
    progress bar on stderr."""
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import init_default_scope
    from mmengine.utils import ProgressBar
    if num_images < 0:
        raise InputError(f'--num-images {num_images}: give 0 (all) or a positive number')
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    dataset = _val_dataset(cfg)
    total = len(dataset) if num_images == 0 else min(num_images, len(dataset))
    if total == 0:
        raise InputError('the validation set of the config has no images')
    bar = ProgressBar(total, file=sys.stderr) if progress else None
    for start in range(0, total, batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, total))]
        yield pseudo_collate(items)
        if bar is not None:
            for _ in items:
                bar.update()
    if bar is not None:
        sys.stderr.write('\n')


def write_json(path: str, obj) -> None:
    """``obj`` as indented JSON at ``path``, atomically; NaN / inf are refused (use None)."""
    atomic_write(path, lambda f: json.dump(obj, f, indent=1, allow_nan=False), mode='w')


def save_figure(fig, path: str, dpi: int = 100) -> None:
    """A matplotlib figure as PNG at ``path``, atomically; the figure is closed."""
    import matplotlib.pyplot as plt
    buf = io.BytesIO()
    fig.savefig(buf, format='png', dpi=dpi, bbox_inches='tight')
    plt.close(fig)
    atomic_write(path, lambda f: f.write(buf.getvalue()))


def run_main(tool: str, main: Callable[[], object]) -> object:
    """Run a tool's ``main``; bad input (InputError, OSError, a mismatching checkpoint) ends
    with one line ``<tool>: error: ...`` and exit status 2."""
    import matplotlib
    matplotlib.use('Agg')
    from mmdet_ksdetr.utils.checkpoint_io import CheckpointMismatchError
    try:
        return main()
    except (InputError, CheckpointMismatchError, OSError, TypeError) as e:
        message = ' '.join(str(e).split()) or type(e).__name__
        print(f'{tool}: error: {message}', file=sys.stderr)
        sys.exit(2)


def prepare_out_dir(out_dir: str) -> str:
    """Create ``out_dir`` (one-line error when it cannot be)."""
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise InputError(f'--out-dir "{out_dir}": {e.strerror or e}') from e
    return out_dir
