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
import math
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


def _box_problem(ann, sizes):
    """Why mmdet's CocoDataset drops the box of ``ann`` ('non-finite' / 'degenerate'), or None
    when it keeps it (mmdet keeps a box of width and height >= 1 px, positive area, that
    overlaps its image)."""
    box = ann.get('bbox')
    if not isinstance(box, (list, tuple)) or len(box) != 4 or not all(
            isinstance(v, (int, float)) and math.isfinite(v) for v in box):
        return 'non-finite'
    x, y, w, h = box
    area = ann.get('area', w * h)
    if not isinstance(area, (int, float)) or not math.isfinite(area):
        return 'non-finite'
    width, height = sizes.get(ann.get('image_id'), (math.inf, math.inf))
    inside = (min(x + w, width) - max(x, 0)) > 0 and (min(y + h, height) - max(y, 0)) > 0
    if w < 1 or h < 1 or area <= 0 or not inside:
        return 'degenerate'
    return None


def box_problems(coco, classes=None):
    """``(valid, problems)`` over the annotations whose category is in ``classes`` (all when
    None): the number of boxes mmdet keeps, and ``{kind: [image ids]}`` of the boxes it drops
    without a word (kind 'non-finite': NaN/inf or not 4 numbers; 'degenerate': width or height
    < 1 px, area <= 0, or outside its image)."""
    names = {c.get('id'): c.get('name') for c in coco.get('categories') or []}
    keep = None if classes is None else set(classes)
    sizes = {img.get('id'): (img.get('width', math.inf), img.get('height', math.inf))
             for img in coco.get('images') or []}
    valid, problems = 0, {}
    for ann in coco.get('annotations') or []:
        if keep is not None and names.get(ann.get('category_id')) not in keep:
            continue
        problem = _box_problem(ann, sizes)
        if problem is None:
            valid += 1
        else:
            problems.setdefault(problem, []).append(ann.get('image_id'))
    return valid, problems


def _describe_box_problems(problems):
    parts = []
    for kind, what in (('degenerate', 'degenerate (width or height < 1 px, zero area or '
                                      'outside the image)'),
                       ('non-finite', 'non-finite (NaN/inf or not 4 numbers)')):
        ids = problems.get(kind)
        if ids:
            firsts = list(dict.fromkeys(ids))
            parts.append(f'{len(ids)} {what}, first image ids: '
                         f'{_shown(str(i) for i in firsts)}')
    return '; '.join(parts)


def unreadable_images(coco, img_dir, skip=()):
    """``[(file name, why)]`` of the images listed in ``coco`` (but not in ``skip``) that are
    empty or that OpenCV cannot decode (JPEGs are decoded at 1/8 scale: all of the file is
    read, little is computed)."""
    import cv2
    import numpy as np
    bad = []
    skip = set(skip)
    for img in coco.get('images') or []:
        name = img.get('file_name', '')
        if name in skip:
            continue
        path = osp.join(img_dir, name)
        try:
            data = np.fromfile(path, dtype=np.uint8)
        except OSError as e:
            bad.append((name, e.strerror or 'unreadable'))
            continue
        if data.size == 0:
            bad.append((name, '0 bytes'))
        elif cv2.imdecode(data, cv2.IMREAD_REDUCED_GRAYSCALE_8) is None:
            bad.append((name, 'not a decodable image'))
    return bad


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


def check_coco_annotations(name, ds, ann_path, check_images=True):
    """Check ``ann_path`` against ``ds`` before a run. Warns (one line each, also returned)
    about annotations that ``ds``'s classes drop and boxes mmdet drops (degenerate or
    non-finite, with counts and the first image ids); raises ``InputError`` when no annotation's
    category is in the classes, when no valid box is left, or when image files are missing or
    (``check_images``) empty / not decodable. Does nothing for a dataset type other than
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
    if anns:
        valid, problems = box_problems(coco, classes)
        if problems:
            total = valid + sum(len(v) for v in problems.values())
            detail = _describe_box_problems(problems)
            if valid == 0:
                raise InputError(
                    f'{name}: none of the {total} boxes in "{ann_path}" is valid ({detail}): '
                    f'training would see no object; fix the bboxes (COCO [x, y, width, '
                    f'height] in pixels)')
            warnings.append(
                f'{name}: {total - valid} of {total} boxes in "{ann_path}" are dropped by '
                f'mmdet: {detail}. Fix or remove those annotations')
    root = ds.get('data_root') or ''
    img_dir = _image_dir(ds, root)
    if _is_local(ds, img_dir):
        _check_image_files(name, coco, ann_path, img_dir, check_images)
    for line in warnings:
        _warn(line)
    return warnings


def _check_image_files(name, coco, ann_path, img_dir, decode):
    """InputError naming the missing and (``decode``) unusable image files, if any."""
    from mmdet_ksdetr.utils.errors import InputError
    missing = missing_images(coco, img_dir)
    bad = unreadable_images(coco, img_dir, skip=missing) if decode else []
    if not missing and not bad:
        return
    parts = []
    if missing:
        parts.append(f'missing: {_shown(missing)}')
    if bad:
        parts.append(f'unreadable: {_shown(f"{n} ({why})" for n, why in bad)}')
    raise InputError(
        f'{name}: {len(missing) + len(bad)} of {len(coco["images"])} images listed in '
        f'"{ann_path}" cannot be read under "{img_dir}" ({"; ".join(parts)}); restore them or '
        f'remove them from the json')
