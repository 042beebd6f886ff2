"""CPU latency of an exported ONNX file (onnxruntime) next to the same detector in PyTorch.

    python -m mmdet_ksdetr.deployment.benchmark CONFIG CHECKPOINT MODEL.onnx
        [--threads 1 0] [--runs 5] [--warmup 1]

Both run the network (image tensor -> top-k boxes, scores, labels) on the same seeded input of
the ONNX file's size (``--shape`` export) or the config's test resize of a 3:4 image
(``--dynamic``); ``--threads 0`` means all cores. Prints the median milliseconds per image and
the file size; ``CHECKPOINT`` may be ``none`` (random weights: latency does not depend on them).
"""
import argparse
import json
import os
import time

import torch

from mmdet_ksdetr.utils.benchmark import interleaved_medians


def benchmark(config, checkpoint, onnx_path, threads=(1, 0), runs=5, warmup=1):
    """``[{'threads': n, 'pytorch_ms': ., 'onnxruntime_ms': .}, ...]`` and the input size."""
    import onnxruntime as ort
    from mmdet_ksdetr.deployment.export import build_detector, input_hw
    from mmdet_ksdetr.deployment.preprocess_meta import META_KEY
    from mmdet_ksdetr.deployment.wrapper import DetrExportWrapper
    if checkpoint == 'none':
        from mmengine.config import Config
        from mmengine.registry import init_default_scope
        from mmdet.registry import MODELS
        init_default_scope('mmdet')
        model = MODELS.build(Config.fromfile(config).model).eval()
    else:
        model = build_detector(config, checkpoint)[1]
    wrapper = DetrExportWrapper(model).eval()
    probe = ort.InferenceSession(onnx_path, providers=['CPUExecutionProvider'])
    meta = json.loads(probe.get_modelmeta().custom_metadata_map[META_KEY])
    h, w = input_hw(meta, meta['input']['static_hw'])
    image = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(0))
    rows = []
    all_cores = os.cpu_count()
    for n in threads:
        n = n or all_cores
        torch.set_num_threads(n)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = n
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(onnx_path, opts, providers=['CPUExecutionProvider'])
        feed = {'image': image.numpy()}
        with torch.no_grad():  # wall clock: both run on n threads; interleaved runs
            sec = interleaved_medians({'pytorch': lambda: wrapper(image),
                                       'onnxruntime': lambda: sess.run(None, feed)},
                                      runs=runs, warmup=warmup, clock=time.perf_counter)
        rows.append(dict(threads=n, pytorch_ms=sec['pytorch'] * 1000,
                         onnxruntime_ms=sec['onnxruntime'] * 1000))
    return rows, (h, w)


def main(argv=None):
    parser = argparse.ArgumentParser(description='onnxruntime vs PyTorch CPU latency')
    parser.add_argument('config')
    parser.add_argument('checkpoint', help="checkpoint file, or 'none' for random weights")
    parser.add_argument('onnx')
    parser.add_argument('--threads', type=int, nargs='+', default=[1, 0],
                        help='thread counts to time (0: all cores)')
    parser.add_argument('--runs', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=1)
    args = parser.parse_args(argv)
    rows, (h, w) = benchmark(args.config, args.checkpoint, args.onnx, args.threads,
                             args.runs, args.warmup)
    size = os.path.getsize(args.onnx) / 2**20
    print(f'{os.path.basename(args.onnx)}: input {h}x{w}, {size:.1f} MB')
    for r in rows:
        print(f'threads {r["threads"]}: PyTorch {r["pytorch_ms"]:.0f} ms, onnxruntime '
              f'{r["onnxruntime_ms"]:.0f} ms per image (median of {args.runs}, '
              f'interleaved)')


if __name__ == '__main__':
    import mmdet_ksdetr  # noqa: F401  (compat shims + registration)
    main()
