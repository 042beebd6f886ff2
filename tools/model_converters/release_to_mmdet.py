"""Convert a released checkpoint of a paper (DETRDistill, detrex, KS-DETR, DAC-DETR) into an
mmdet 3.x checkpoint for the model of CONFIG.

    python tools/model_converters/release_to_mmdet.py SRC DST --config CFG [--source auto]

SRC is read with the safe loader (tensors only, never code); the converted weights are loaded
strictly into the model built from CFG before DST is written (atomically: a failure leaves no
file). Any error is one line ``release_to_mmdet: error: ...`` and exit status 2.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

PROG = 'release_to_mmdet'


def parse_args(argv=None):
    from mmdet_ksdetr.converters.release import registered_formats
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='the release checkpoint as downloaded')
    parser.add_argument('dst', help='the mmdet checkpoint to write')
    parser.add_argument('--config', required=True, help='config of the model the weights go '
                        'into (e.g. configs/detectors/deformable-detr_r101_16xb2-50e_coco.py)')
    parser.add_argument('--source', default='auto', choices=['auto'] + registered_formats(),
                        help='release format (default: recognised from the key names)')
    return parser.parse_args(argv)


def build_model(cfg):
    """The detector of ``cfg`` (mmdet scope), without pretrained-weight downloads."""
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model_cfg = cfg.model.copy()
    if isinstance(model_cfg.get('backbone'), dict):
        model_cfg.backbone.init_cfg = None  # the checkpoint brings the weights
    return MODELS.build(model_cfg)


def convert(src, dst, config, source='auto', log=print):
    """Convert ``src`` into ``dst`` for ``config``; returns the :class:`ConversionReport`."""
    from mmengine.config import Config

    from mmdet_ksdetr.converters.release import convert_checkpoint
    from mmdet_ksdetr.utils.checkpoint_io import (atomic_save, check_output_path,
                                                  check_state_dict_fits, read_back_check)
    from mmdet_ksdetr.utils.checks import check_config_path
    check_output_path(dst, inputs=[src])
    cfg = Config.fromfile(check_config_path(config))
    report = []
    ckpt = convert_checkpoint(src, source=source, cfg=cfg, report=report)
    rep = report[0]
    model = build_model(cfg)
    check_state_dict_fits(model, ckpt['state_dict'],
                          source=f'the converted {rep.source} checkpoint')
    model.load_state_dict(ckpt['state_dict'], strict=True)
    del model
    ckpt['meta']['config'] = osp.basename(config)
    atomic_save(ckpt, dst, check=read_back_check(ckpt))
    log(f'format: {rep.source} ({rep.architecture})')
    log(f'mapped: {rep.mapped} tensors; loaded strictly into {cfg.model.get("type")} of '
        f'{osp.basename(config)}')
    log(f'dropped as training-only: {len(rep.dropped)}')
    for key, why in rep.dropped.items():
        log(f'  {key}: {why}')
    for note in rep.notes:
        log(f'note: {note}')
    log(f'wrote {dst}')
    return rep


def main(argv=None):
    args = parse_args(argv)
    from mmdet_ksdetr.utils.checkpoint_io import CheckpointMismatchError, OutputPathError
    from mmdet_ksdetr.utils.errors import InputError
    try:
        convert(args.src, args.dst, args.config, args.source)
    except (InputError, CheckpointMismatchError, OutputPathError, FileNotFoundError) as e:
        print(f'{PROG}: error: {str(e).splitlines()[0]}', file=sys.stderr)
        sys.exit(2)


if __name__ == '__main__':
    main()
