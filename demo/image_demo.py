"""Detect objects in images with a config of this library and its checkpoint, and save the
drawn predictions (``vis/``) and the boxes as JSON (``preds/``), as mmdet's ``image_demo.py``.

    python demo/image_demo.py IMAGE_OR_FOLDER CONFIG --weights CKPT [--out-dir outputs]
                              [--device cpu|cuda:0] [--pred-score-thr 0.3]

A KS-DETR, DAC-DETR or distilled checkpoint works with its own config; a converted plain
checkpoint (``tools/pth_transfer.py``) with the stock mmdet config it names.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout

import mmdet_ksdetr  # noqa: E402,F401  (compat shims + registration)
from mmdet_ksdetr.apis import SafeDetInferencer  # noqa: E402
from mmdet_ksdetr.utils import InputError, check_config_path  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Detect objects in images')
    parser.add_argument('inputs', help='an image file or a folder of images')
    parser.add_argument('config', help='config file (or mmdet_ksdetr::/mmdet:: path)')
    parser.add_argument('--weights', required=True, help='checkpoint file')
    parser.add_argument('--out-dir', default='outputs', help='output folder')
    parser.add_argument('--device', default='cpu', help='cpu or cuda:N')
    parser.add_argument('--pred-score-thr', type=float, default=0.3,
                        help='draw boxes scoring at least this')
    parser.add_argument('--batch-size', type=int, default=1)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        if not osp.exists(args.inputs):
            raise InputError(f'input "{args.inputs}" does not exist')
        config = args.config if '::' in args.config else check_config_path(args.config)
        inferencer = SafeDetInferencer(model=config, weights=args.weights, device=args.device,
                                       show_progress=False)
    except (InputError, ValueError) as e:
        sys.exit(f'image_demo.py: error: {e}')
    inferencer(args.inputs, out_dir=args.out_dir, pred_score_thr=args.pred_score_thr,
               batch_size=args.batch_size, no_save_pred=False)
    print(f'results saved in {osp.abspath(args.out_dir)} (vis/ and preds/)')


if __name__ == '__main__':
    main()
