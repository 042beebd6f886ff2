"""Detect objects in an image with an ONNX file from ``export_onnx.py``: onnxruntime, numpy
and OpenCV only (no torch, no mmdet).

    python tools/deployment/onnx_demo.py model.onnx IMAGE [--out vis.png] [--score-thr 0.3]

The image is read as mmdet reads it (BGR), resized, normalised and padded with the settings
the export stored in the file (the config's test pipeline and data preprocessor), run, and the
boxes are scaled back to the original image. Detections scoring at least ``--score-thr`` are
printed (``label score x1 y1 x2 y2``) and, with ``--out``, drawn as mmdet's image demo draws
them.
"""
import argparse
import json
import os
import os.path as osp
import sys
import tempfile

import cv2
import numpy as np

META_KEY = 'mmdet_ksdetr'
META_FORMAT = 'mmdet_ksdetr.onnx.detr/1'
INTERPOLATION = {'nearest': cv2.INTER_NEAREST, 'bilinear': cv2.INTER_LINEAR,
                 'bicubic': cv2.INTER_CUBIC, 'area': cv2.INTER_AREA,
                 'lanczos': cv2.INTER_LANCZOS4}


class DemoError(Exception):
    """Bad input to the demo; the message says what to fix."""


def load_session(path):
    """``(onnxruntime session, metadata dict)``; one clear error if the file is not an
    export of ``export_onnx.py``."""
    import onnxruntime as ort
    if not osp.isfile(path):
        raise DemoError(f'ONNX file "{path}" does not exist')
    try:
        sess = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    except Exception as e:  # noqa: BLE001  (onnxruntime raises its own types)
        raise DemoError(f'cannot load "{path}" with onnxruntime: {str(e).splitlines()[0]}')
    meta = sess.get_modelmeta().custom_metadata_map.get(META_KEY)
    meta = json.loads(meta) if meta else {}
    if meta.get('format') != META_FORMAT:
        raise DemoError(f'"{path}" has no {META_FORMAT} metadata: export it with '
                        f'tools/deployment/export_onnx.py')
    return sess, meta


def read_image(path):
    """The image as mmdet's ``LoadImageFromFile`` reads it: (H, W, 3) uint8 BGR."""
    img = cv2.imread(path, cv2.IMREAD_COLOR) if osp.isfile(path) else None
    if img is None:
        raise DemoError(f'cannot read image "{path}" (missing or not an image)')
    return img


def resize(img, meta):
    """Resize as the test pipeline (mmdet ``Resize``) does, or to fit the fixed input size
    of a static export. Returns ``(image, (w_scale, h_scale))``."""
    h, w = img.shape[:2]
    static = meta['input']['static_hw']
    rcfg = meta['resize']
    if static:
        factor = min(static[0] / h, static[1] / w)
        new_w, new_h = int(w * factor + 0.5), int(h * factor + 0.5)
    elif rcfg['keep_ratio']:
        long_edge, short_edge = max(rcfg['scale']), min(rcfg['scale'])
        factor = min(long_edge / max(h, w), short_edge / min(h, w))
        new_w, new_h = int(w * factor + 0.5), int(h * factor + 0.5)
    else:
        new_w, new_h = rcfg['scale']
    out = cv2.resize(img, (new_w, new_h), interpolation=INTERPOLATION[rcfg['interpolation']])
    return out, (new_w / w, new_h / h)


def preprocess(img, meta):
    """(H, W, 3) uint8 BGR image -> ((1, 3, H', W') float32 network input, scale factor):
    resize, channel order, ``(x - mean) / std``, pad bottom/right with ``pad_value`` to the
    size divisor (or to the fixed input size)."""
    img, scale_factor = resize(img, meta)
    if meta['bgr_to_rgb']:
        img = img[..., ::-1]
    x = (img.astype(np.float32) - np.float32(meta['mean'])) / np.float32(meta['std'])
    h, w = x.shape[:2]
    static = meta['input']['static_hw']
    d = meta['pad_size_divisor']
    ph, pw = static if static else (-(-h // d) * d, -(-w // d) * d)
    padded = np.full((ph, pw, 3), meta['pad_value'], np.float32)
    padded[:h, :w] = x
    return np.ascontiguousarray(padded.transpose(2, 0, 1)[None]), scale_factor


def detect(sess, meta, img):
    """Boxes (k, 4) in original-image pixels, scores (k, ), labels (k, ), best first."""
    x, (w_scale, h_scale) = preprocess(img, meta)
    boxes, scores, labels = sess.run(None, {meta['input']['name']: x})
    boxes = boxes / np.float32([w_scale, h_scale, w_scale, h_scale])  # as mmdet's rescale
    return boxes, scores, labels


def palette(meta):
    if meta.get('palette'):
        return [tuple(c) for c in meta['palette']]
    rng = np.random.RandomState(42)
    return [tuple(int(v) for v in rng.randint(0, 256, 3)) for _ in meta['classes']]


def draw(img, boxes, scores, labels, meta):
    """Boxes in their class colour with a ``class: score`` tag, as mmdet's visualiser draws
    them (palette colours are RGB)."""
    out = img.copy()
    colors = palette(meta)
    thick = max(1, round(min(img.shape[:2]) / 400))
    font = max(0.35, min(img.shape[:2]) / 1200)
    for (x1, y1, x2, y2), s, c in zip(boxes, scores, labels):
        r, g, b = colors[int(c) % len(colors)]
        p1, p2 = (int(round(x1)), int(round(y1))), (int(round(x2)), int(round(y2)))
        cv2.rectangle(out, p1, p2, (b, g, r), thick)
        text = f'{meta["classes"][int(c)]}: {s:.2f}'
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font, 1)
        ty = max(p1[1], th + base)
        cv2.rectangle(out, (p1[0], ty - th - base), (p1[0] + tw, ty), (0, 0, 0), -1)
        cv2.putText(out, text, (p1[0], ty - base), cv2.FONT_HERSHEY_SIMPLEX, font,
                    (255, 255, 255), 1, cv2.LINE_AA)
    return out


def save_image(path, img):
    """Write ``img`` to ``path`` atomically (temporary file beside it, then rename)."""
    folder = osp.dirname(osp.abspath(path))
    ext = osp.splitext(path)[1] or '.png'
    ok, data = cv2.imencode(ext, img)
    if not ok:
        raise DemoError(f'cannot encode "{path}": use a .png or .jpg name')
    if not osp.isdir(folder):
        raise DemoError(f'cannot write "{path}": output folder "{folder}" does not exist')
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f'.{osp.basename(path)}.', suffix='.tmp', dir=folder)
        with os.fdopen(fd, 'wb') as f:
            f.write(data.tobytes())
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        raise DemoError(f'cannot write "{path}": {e.strerror or e}')
    finally:
        if tmp is not None:
            os.unlink(tmp)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Detect objects with an exported ONNX model')
    parser.add_argument('model', help='.onnx file written by export_onnx.py')
    parser.add_argument('image', help='image file')
    parser.add_argument('--out', help='write the drawn detections here (.png / .jpg)')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='print and draw detections scoring at least this')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        sess, meta = load_session(args.model)
        img = read_image(args.image)
        boxes, scores, labels = detect(sess, meta, img)
        keep = scores >= args.score_thr
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        for b, s, c in zip(boxes, scores, labels):
            print(f'{meta["classes"][int(c)]} {s:.3f} ' + ' '.join(f'{v:.1f}' for v in b))
        if args.out:
            save_image(args.out, draw(img, boxes, scores, labels, meta))
            print(f'{len(scores)} detections drawn in {args.out}')
    except DemoError as e:
        sys.exit(f'onnx_demo.py: error: {e}')


if __name__ == '__main__':
    main()
