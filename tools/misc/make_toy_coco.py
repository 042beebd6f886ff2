"""Write a small, deterministic, synthetic COCO-format detection data set.

Images of several sizes (at most 160 px) hold a few filled shapes (rectangle, ellipse,
triangle: the three classes) in random colours on a noisy background; some shapes overlap and
some images hold no object. The same ``--seed`` always gives byte-identical files.

    python tools/misc/make_toy_coco.py --out data/toy_coco

Layout (what ``configs/_base_/datasets/toy_coco.py`` reads)::

    data/toy_coco/train/000000.png ...
    data/toy_coco/val/000000.png ...
    data/toy_coco/annotations/instances_train.json
    data/toy_coco/annotations/instances_val.json
"""
import argparse
import json
import os
import os.path as osp
import shutil
import sys
import tempfile

import cv2
import numpy as np

CLASSES = ('rectangle', 'ellipse', 'triangle')
IMAGE_SIZES = ((128, 128), (96, 128), (128, 96), (160, 120), (120, 160), (112, 112))  # (w, h)
COLOURS = ((220, 40, 40), (40, 200, 40), (40, 80, 230), (230, 200, 30), (200, 40, 200),
           (30, 200, 200), (240, 240, 240))


def draw_shape(img, cls, x1, y1, x2, y2, colour):
    """Paint one filled shape whose tight box is (x1, y1, x2, y2) (inclusive pixels)."""
    if cls == 0:
        cv2.rectangle(img, (x1, y1), (x2, y2), colour, thickness=-1)
    elif cls == 1:
        centre = ((x1 + x2) // 2, (y1 + y2) // 2)
        axes = ((x2 - x1) // 2, (y2 - y1) // 2)
        cv2.ellipse(img, centre, axes, 0, 0, 360, colour, thickness=-1)
    else:
        pts = np.array([[(x1 + x2) // 2, y1], [x1, y2], [x2, y2]], np.int32)
        cv2.fillPoly(img, [pts], colour)


def make_image(rng, width, height, max_objects, empty_prob):
    img = rng.integers(60, 120, size=(height, width, 3), dtype=np.uint8)
    img = cv2.GaussianBlur(img, (5, 5), 0)
    objects = []
    n = 0 if rng.random() < empty_prob else int(rng.integers(1, max_objects + 1))
    for _ in range(n):
        cls = int(rng.integers(0, len(CLASSES)))
        bw = int(rng.integers(16, max(17, width // 2)))
        bh = int(rng.integers(16, max(17, height // 2)))
        x1 = int(rng.integers(0, width - bw))
        y1 = int(rng.integers(0, height - bh))
        colour = tuple(int(c) for c in COLOURS[int(rng.integers(0, len(COLOURS)))])
        draw_shape(img, cls, x1, y1, x1 + bw - 1, y1 + bh - 1, colour)
        objects.append((cls, x1, y1, bw, bh))
    return img, objects


def make_split(out_dir, split, num_images, seed, max_objects, empty_prob):
    rng = np.random.default_rng(seed)
    os.makedirs(osp.join(out_dir, split), exist_ok=True)
    images, annotations = [], []
    for idx in range(num_images):
        width, height = IMAGE_SIZES[int(rng.integers(0, len(IMAGE_SIZES)))]
        img, objects = make_image(rng, width, height, max_objects, empty_prob)
        file_name = f'{idx:06d}.png'
        if not cv2.imwrite(osp.join(out_dir, split, file_name), img):
            raise OSError(f'could not write {osp.join(out_dir, split, file_name)}')
        images.append(dict(id=idx + 1, file_name=file_name, width=width, height=height))
        for cls, x, y, w, h in objects:
            annotations.append(dict(id=len(annotations) + 1, image_id=idx + 1,
                                    category_id=cls + 1, bbox=[x, y, w, h], area=w * h,
                                    iscrowd=0, segmentation=[]))
    categories = [dict(id=i + 1, name=name, supercategory='shape')
                  for i, name in enumerate(CLASSES)]
    coco = dict(info=dict(description=f'mmdet_ksdetr toy COCO ({split}, seed {seed})'),
                licenses=[], images=images, annotations=annotations, categories=categories)
    with open(osp.join(out_dir, 'annotations', f'instances_{split}.json'), 'w') as f:
        json.dump(coco, f)
    return len(images), len(annotations)


def make_toy_coco(out_dir, num_train=64, num_val=24, seed=0, max_objects=4, empty_prob=0.1):
    """Write the data set to ``out_dir`` atomically; returns {split: (images, boxes)}."""
    if num_train < 1 or num_val < 1:
        raise ValueError('--num-train and --num-val must be at least 1')
    out_dir = osp.abspath(out_dir)
    parent = osp.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix='.toy_coco_', dir=parent)
    try:
        os.makedirs(osp.join(tmp, 'annotations'))
        stats = dict(train=make_split(tmp, 'train', num_train, seed, max_objects, empty_prob),
                     val=make_split(tmp, 'val', num_val, seed + 1, max_objects, empty_prob))
        if osp.exists(out_dir):
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return stats


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='data/toy_coco', help='output folder (replaced)')
    parser.add_argument('--num-train', type=int, default=64)
    parser.add_argument('--num-val', type=int, default=24)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--max-objects', type=int, default=4)
    parser.add_argument('--empty-prob', type=float, default=0.1,
                        help='probability that an image has no object')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        stats = make_toy_coco(args.out, args.num_train, args.num_val, args.seed,
                              args.max_objects, args.empty_prob)
    except (ValueError, OSError) as e:
        sys.exit(f'make_toy_coco: {e}')
    for split, (n_img, n_box) in stats.items():
        print(f'{split}: {n_img} images, {n_box} boxes -> {osp.join(args.out, split)}')


if __name__ == '__main__':
    main()
