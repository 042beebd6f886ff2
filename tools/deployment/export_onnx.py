"""Export a DETR-family detector to ONNX for onnxruntime (standard operators only).

    python tools/deployment/export_onnx.py CONFIG CHECKPOINT --out model.onnx
                                          [--shape H W | --dynamic] [--opset 17]
                                          [--cfg-options KEY=VALUE ...]

The file takes the preprocessed image (1, 3, H, W) float32 (resized, normalised and padded as
the config's test pipeline and data preprocessor do; these settings and the class names are
stored in the file's metadata) and returns ``boxes`` (k, 4) x1y1x2y2 in input pixels,
``scores`` (k, ) and ``labels`` (k, ) int64, k = ``test_cfg.max_per_img``: the top-k of the
head's ``predict_by_feat``. ``tools/deployment/onnx_demo.py`` runs it without torch.

Without ``--shape`` the height and width are dynamic. DETR, Deformable DETR (two-stage, box
refinement), Conditional DETR, DAB-DETR, DN-DETR, DN-Deformable-DETR and DINO detectors are
supported, KS-DETR / DAC-DETR ones with their own config or, after ``tools/pth_transfer.py``,
with the stock config it names. Before the file is moved into place it is checked
(``onnx.checker``) and run with onnxruntime against PyTorch on two input sizes (one for
``--shape``); a failed or interrupted export leaves nothing behind.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import mmdet_ksdetr  # noqa: E402,F401  (compat shims + registration)
from mmdet_ksdetr.utils.cfg_options import CfgOptionsAction  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Export a DETR-family detector to ONNX')
    parser.add_argument('config', help='config file (or mmdet_ksdetr::/mmdet:: path)')
    parser.add_argument('checkpoint', help='checkpoint file (plain detector state_dict)')
    parser.add_argument('--out', required=True, help='output .onnx file')
    size = parser.add_mutually_exclusive_group()
    size.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                      help='fixed input height and width')
    size.add_argument('--dynamic', action='store_true',
                      help='dynamic input height and width (the default)')
    parser.add_argument('--opset', type=int, default=17, help='ONNX opset (>= 16)')
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction,
                        help='override config keys, e.g. model.test_cfg.max_per_img=100')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from mmdet_ksdetr.deployment.export import ExportMismatchError, export_onnx
    from mmdet_ksdetr.utils.checkpoint_io import OutputPathError
    from mmdet_ksdetr.utils.errors import InputError
    try:
        info = export_onnx(args.config, args.checkpoint, args.out, shape=args.shape,
                           dynamic=args.dynamic, opset=args.opset, cfg_options=args.cfg_options)
    except (InputError, ValueError, OutputPathError, ExportMismatchError) as e:
        sys.exit(f'export_onnx.py: error: {e}')
    size = 'dynamic H x W' if info['dynamic'] else 'fixed {}x{}'.format(*info['input_hw'])
    checked = ', '.join(f'{h}x{w}' for h, w in info['checked_shapes'])
    print(f'wrote {info["out"]} ({info["size_mb"]:.1f} MB): {info["detector"]}, {size}, '
          f'opset {info["opset"]}')
    print(f'onnxruntime vs PyTorch at {checked}: max score difference {info["score"]:.1e}, '
          f'max box difference {info["box_px"]:.1e} px')


if __name__ == '__main__':
    main()
