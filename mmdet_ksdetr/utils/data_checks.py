"""Cheap checks of a COCO-style data set against its config, run before a training / test run:
annotations the config's classes would silently drop, and image files that are missing.

mmdet's :class:`~mmdet.datasets.CocoDataset` keeps an annotation only when its category's
*name* is one of ``metainfo.classes``; everything else is dropped without a word, and a missing
image file is found only when the data loader reaches it. These checks read the annotation
json once (``json`` module, no image decoding) and list each image folder once, so a COCO json
of 100k images takes seconds. They warn (one line each, through mmengine's logger); a data set
where *no* annotation survives is an :class:`~mmdet_ksdetr.utils.checks.InputError`.
"""
import json
import logging
import os
import os.path as osp
from collections import Counter

from mmengine.logging import print_log

#: how many dropped categories / missing files a warning names before "..."
SHOWN = 5

#: what ``tools/misc/make_toy_coco.py --out ROOT`` writes: annotation file -> image folder
TOY_LAYOUT = {'annotations/instances_train.json': 'train/',
              'annotations/instances_val.json': 'val/'}
#: the toy set's three categories
TOY_CLASSES = ('rectangle', 'ellipse', 'triangle')
COCO_DOWNLOAD = ('COCO 2017 (train2017.zip, val2017.zip, annotations_trainval2017.zip) is at '
                 'https://cocodataset.org/#download')


def _shown(items):
    items = list(items)
    more = f', ... ({len(items) - SHOWN} more)' if len(items) > SHOWN else ''
    return ', '.join(items[:SHOWN]) + more


def dataset_class(ds):
    """The dataset config's class (``type`` looked up in mmdet's registry); ``None`` if
    unknown."""
    ds_type = ds.get('type')
    if isinstance(ds_type, str):
        from mmdet.registry import DATASETS
        try:
            ds_type = DATASETS.get(ds_type)
        except Exception:  # noqa: BLE001  (an unknown scope: nothing to check against)
            ds_type = None
    return ds_type if isinstance(ds_type, type) else None


def is_coco_style(ds):
    """True for mmdet's CocoDataset and its subclasses (which keep annotations by name)."""
    from mmdet.datasets import CocoDataset
    cls = dataset_class(ds)
    return cls is not None and issubclass(cls, CocoDataset)


def dataset_classes(ds):
    """The class names a dataset config keeps: ``metainfo.classes`` or the dataset type's
    default ``METAINFO`` (e.g. the 80 COCO classes); ``None`` if unknown."""
    classes = (ds.get('metainfo') or {}).get('classes')
    if classes is not None:
        return tuple(classes)
    meta = getattr(dataset_class(ds), 'METAINFO', None) or {}
    return tuple(meta['classes']) if 'classes' in meta else None


def missing_data_hint(ds, root):
    """What to do about a data set config ``ds`` whose data root ``root`` (or annotation
    file) is missing, as one sentence: the ``make_toy_coco.py`` command when the config reads
    the toy layout and classes (that command writes exactly these files), else the files the
    config expects under ``root`` and, for a COCO-classes config, where COCO is downloaded;
    always the ``--cfg-options data_root=PATH`` way out."""
    ann = ds.get('ann_file') or ''
    img = (ds.get('data_prefix') or {}).get('img', '') or ''
    classes = dataset_classes(ds)
    root = root.rstrip('/') or '.'
    if (TOY_LAYOUT.get(ann) == img and classes is not None
            and set(classes) <= set(TOY_CLASSES)):
        todo = f'Create the toy set there with: python tools/misc/make_toy_coco.py --out {root}'
    else:
        wanted = [f'"{ann}"'] if ann else []
        if img:
            wanted.append(f'the images under "{img}"')
        todo = (f'The config expects {" and ".join(wanted)} in "{root}"' if wanted
                else f'The config expects its data in "{root}"')
        coco_classes = (getattr(dataset_class(ds), 'METAINFO', None) or {}).get('classes')
        if is_coco_style(ds) and coco_classes and classes == tuple(coco_classes):
            todo += f'; {COCO_DOWNLOAD}'
    return f'{todo}; or point the config at your data with --cfg-options data_root=PATH'


def dropped_categories(coco, classes):
    """``(kept, dropped)``: the number of annotations whose category name is in ``classes``
    and a Counter of the others keyed by ``'"name" (id N)'`` (``'unknown id N'`` when the
    json's ``categories`` do not list the id)."""
    names = {c.get('id'): c.get('name') for c in coco.get('categories') or []}
    counts = Counter(a.get('category_id') for a in coco.get('annotations') or [])
    keep = set(classes)
    kept, dropped = 0, Counter()
    for cat_id, n in counts.items():
        name = names.get(cat_id)
        if name in keep:
            kept += n
        else:
            label = f'"{name}" (id {cat_id})' if cat_id in names else f'unknown id {cat_id}'
            dropped[label] += n
    return kept, dropped


def missing_images(coco, img_dir):
    """File names listed in ``coco['images']`` that are not files under ``img_dir`` (each
    folder is listed once; no file is opened)."""
    listings = {}
    missing = []
    for img in coco.get('images') or []:
        name = img.get('file_name', '')
        path = osp.join(img_dir, name)
        folder, base = osp.split(path)
        if folder not in listings:
            try:
                listings[folder] = set(os.listdir(folder))
            except OSError:
                listings[folder] = set()
        if base not in listings[folder]:
            missing.append(name)
    return missing


def _image_dir(ds, root):
    prefix = (ds.get('data_prefix') or {}).get('img', '')
    if root and not osp.isabs(prefix):
        return osp.join(root, prefix)
    return prefix


def _is_local(ds, path):
    backend = (ds.get('backend_args') or {}).get('backend', 'local')
    return backend in ('local', 'disk') and '://' not in path


def _warn(message):
    print_log(message, logger='current', level=logging.WARNING)


def check_coco_annotations(name, ds, ann_path):
    """Warn about annotations of ``ann_path`` that ``ds``'s classes drop and about image files
    that are missing; raise ``InputError`` when no annotation's category is in the classes.
    Returns the warning lines (also logged). Does nothing for a dataset type other than
    CocoDataset (or a subclass) or a json that is not COCO-style."""
    from mmdet_ksdetr.utils.errors import InputError
    if not ann_path.endswith('.json') or not _is_local(ds, ann_path) or not is_coco_style(ds):
        return []
    classes = dataset_classes(ds)
    with open(ann_path) as f:
        try:
            coco = json.load(f)
        except ValueError as e:
            raise InputError(f'{name}: annotation file "{ann_path}" is not valid json ({e})')
    if not isinstance(coco, dict) or 'images' not in coco:
        return []
    warnings = []
    anns = coco.get('annotations') or []
    if classes is not None and anns:
        kept, dropped = dropped_categories(coco, classes)
        listing = _shown(f'{label}: {n}' for label, n in dropped.most_common())
        if kept == 0:
            raise InputError(
                f'{name}: none of the {len(anns)} annotations in "{ann_path}" has a category '
                f'in the config\'s classes {list(classes)} (its categories: {listing}); set '
                f'{name}.dataset.metainfo.classes to the json\'s category names')
        if dropped:
            warnings.append(
                f'{name}: {sum(dropped.values())} of {len(anns)} annotations in "{ann_path}" '
                f'are dropped because their category is not in the config\'s classes: '
                f'{listing}. Add the names to {name}.dataset.metainfo.classes to keep them')
    root = ds.get('data_root') or ''
    img_dir = _image_dir(ds, root)
    if _is_local(ds, img_dir):
        missing = missing_images(coco, img_dir)
        if missing:
            warnings.append(
                f'{name}: {len(missing)} of {len(coco["images"])} images listed in '
                f'"{ann_path}" are missing under "{img_dir}": {_shown(missing)}')
    for line in warnings:
        _warn(line)
    return warnings
