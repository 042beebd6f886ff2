"""How many decoder queries gather around each ground-truth object, per decoder layer, and how
good the closest one is (DAC-DETR's "averaged number of queries that have large affinity with
each object"), for one model or a model and its baseline.

    python tools/analysis_tools/query_affinity.py CONFIG CHECKPOINT \
        [--compare CONFIG2 CHECKPOINT2] [--labels A B] [--num-images N] \
        [--thresholds 0.5 0.6 0.7 0.8] [--overlay-images 3] --out-dir DIR

On the first ``--num-images`` validation images (0 = all) it writes into DIR:

* ``queries_per_object.png``: per decoder layer, the average number of queries whose box has
  IoU > t with an object, against t, one line per model;
* ``closest_query.png``: per decoder layer, histograms of the closest query's IoU (top row) and
  of its score for the object's class (bottom row), one outline per model;
* ``overlay.png``: the first ``--overlay-images`` images with objects, per model: GT boxes
  (yellow, dashed) and the last layer's query boxes with IoU > the lowest threshold with one
  of them (red), drawn by mmdet's ``DetLocalVisualizer``;
* ``query_affinity.json``: every number behind them, per object included (schema and exact
  definitions: :mod:`mmdet_ksdetr.analysis.query_affinity`).

Works with any DETR-family detector of mmdet (DAC-DETR and its baselines) and distiller
checkpoints (their student). Any other model, a checkpoint of another model or bad input
stops with one line ``query_affinity.py: error: ...`` (exit status 2).
"""
import argparse
import os.path as osp
import sys
import warnings

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

TOOL = 'query_affinity.py'
COLORS = ('tab:red', 'tab:blue', 'tab:green', 'tab:orange')


def parse_args(argv=None):
    """The tool's command line (the shared analysis arguments plus its own)."""
    from mmdet_ksdetr.analysis.common import add_common_args
    from mmdet_ksdetr.analysis.query_affinity import THRESHOLDS
    parser = argparse.ArgumentParser(prog=TOOL, description=__doc__.split('\n\n')[0])
    add_common_args(parser, default_num_images=50)
    parser.add_argument('--thresholds', type=float, nargs='+', default=list(THRESHOLDS),
                        help='IoU thresholds t of the queries-per-object curve (default '
                        '0.5 0.6 0.7 0.8)')
    parser.add_argument('--overlay-images', type=int, default=3,
                        help='images drawn in overlay.png (default 3)')
    parser.add_argument('--dpi', type=int, default=100, help='PNG resolution (default 100)')
    return parser.parse_args(argv)


def check_args(args):
    """One-line errors for values argparse lets through."""
    from mmdet_ksdetr.utils.errors import InputError
    ts = args.thresholds
    if any(not 0 <= t < 1 for t in ts) or sorted(set(ts)) != ts:
        raise InputError(f'--thresholds {ts}: give increasing, distinct IoUs in [0, 1)')
    if args.overlay_images < 1 or args.dpi < 10:
        raise InputError('--overlay-images must be >= 1 and --dpi >= 10')


def check_models(models, cfg, thresholds):
    """Run every model on the first validation image before the progress bar starts, so a
    model that is not a DETR (or whose forward the analysis cannot follow) fails in one line."""
    from mmdet_ksdetr.analysis.common import unwrap_detector, val_batches, val_pipeline
    from mmdet_ksdetr.analysis.query_affinity import batch_affinity
    from mmdet_ksdetr.distill.core.capture import check_detr
    first = next(val_batches(cfg, 1, progress=False))
    for m in models:
        check_detr(unwrap_detector(m.model), role=f'model of "{m.config}"')
        batch_affinity(m.model, first, val_pipeline(cfg), thresholds)


def collect(models, args):
    """Per model: its JSON record (objects, aggregates, overlay boxes)."""
    from mmdet_ksdetr.analysis.common import val_batches, val_pipeline
    from mmdet_ksdetr.analysis.query_affinity import (HIST_BINS, batch_affinity,
                                                      overlay_boxes, summarize)
    records = {m.label: dict(config=m.config, checkpoint=m.checkpoint, objects=[], overlay=[])
               for m in models}
    num_images = 0
    pipeline = val_pipeline(models[0].cfg)
    for batch in val_batches(models[0].cfg, args.num_images, args.device):
        num_images += len(batch['inputs'])
        for m in models:
            rec = records[m.label]
            for objects, pred, gt in batch_affinity(m.model, batch, pipeline, args.thresholds):
                rec['num_layers'], rec['num_queries'] = pred.shape[0], pred.shape[1]
                rec['objects'] += objects
                if objects and len(rec['overlay']) < args.overlay_images:
                    rec['overlay'].append(dict(
                        image=objects[0]['image'], layer=pred.shape[0] - 1,
                        threshold=args.thresholds[0], gt_bboxes=gt.tolist(),
                        query_bboxes=overlay_boxes(pred[-1], gt, args.thresholds[0]).tolist()))
    for rec in records.values():
        rec['num_objects'] = len(rec['objects'])
        rec.update(summarize(rec['objects'], rec['num_layers'], args.thresholds, HIST_BINS))
    return records, num_images


def plot_counts(records, thresholds, path, dpi):
    """``queries_per_object.png``: one panel per decoder layer, one line per model."""
    import matplotlib.pyplot as plt
    from mmdet_ksdetr.analysis.common import save_figure
    num_layers = max(r['num_layers'] for r in records.values())
    fig, axes = plt.subplots(1, num_layers, figsize=(3.2 * num_layers, 2.8), squeeze=False,
                             sharey=True)
    for layer, ax in enumerate(axes[0]):
        for color, (label, rec) in zip(COLORS, records.items()):
            if layer < rec['num_layers']:
                ax.plot(thresholds, rec['avg_queries_per_object'][layer], 'o-', color=color,
                        label=label)
        ax.set_title(f'decoder layer {layer + 1}')
        ax.set_xlabel('IoU threshold t')
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel('avg #queries with IoU > t\nper object')
    _legend(fig, axes)
    save_figure(fig, path, dpi)


def _legend(fig, axes):
    """One legend for the whole figure, above the panels."""
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc='lower center', bbox_to_anchor=(0.5, 1.0), fontsize=8,
               ncol=1, frameon=False)


def plot_closest(records, bins, path, dpi):
    """``closest_query.png``: best-IoU (top) and its score (bottom) histograms per layer."""
    import matplotlib.pyplot as plt
    from mmdet_ksdetr.analysis.common import save_figure
    num_layers = max(r['num_layers'] for r in records.values())
    fig, axes = plt.subplots(2, num_layers, figsize=(3.2 * num_layers, 5), squeeze=False)
    rows = (('best_iou_hist', 'mean_best_iou', 'IoU'),
            ('best_score_hist', 'mean_best_score', 'score of GT class'))
    for row, (key, mean, name) in enumerate(rows):
        for layer in range(num_layers):
            ax = axes[row][layer]
            for color, (label, rec) in zip(COLORS, records.items()):
                if layer < rec['num_layers'] and rec['num_objects']:
                    ax.stairs(rec[key][layer], bins, color=color, linewidth=1.5, label=label)
                    ax.axvline(rec[mean][layer], color=color, linestyle=':', linewidth=1)
            ax.set_title(f'decoder layer {layer + 1}', fontsize=9)
            ax.set_xlabel(f'closest query: {name} (dotted: mean)', fontsize=8)
        axes[row][0].set_ylabel('#objects')
    fig.tight_layout()
    _legend(fig, axes)
    save_figure(fig, path, dpi)


def draw_overlay(entry, min_side=300):
    """One overlay image (RGB array) drawn by mmdet's DetLocalVisualizer; small images are
    enlarged to ``min_side`` pixels on their long side first so thin boxes stay visible."""
    import mmcv
    import numpy as np
    from mmdet.visualization import DetLocalVisualizer
    image = mmcv.imread(entry['image'], channel_order='rgb')
    scale = max(1.0, min_side / max(image.shape[:2]))
    vis = DetLocalVisualizer.get_instance('query_affinity_overlay')
    vis.set_image(mmcv.imrescale(image, scale))
    with warnings.catch_warnings():  # boxes on the image border are not out of bounds here
        warnings.simplefilter('ignore', UserWarning)
        if entry['query_bboxes']:
            vis.draw_bboxes(np.asarray(entry['query_bboxes']) * scale, edge_colors='red',
                            line_widths=1.5, alpha=0.7)
        vis.draw_bboxes(np.asarray(entry['gt_bboxes']) * scale, edge_colors='yellow',
                        line_widths=2.5, line_styles='--')
    return vis.get_image()


def plot_overlay(records, path, dpi):
    """``overlay.png``: a row per model, a column per image."""
    import matplotlib.pyplot as plt
    from mmdet_ksdetr.analysis.common import save_figure
    cols = max(1, max(len(r['overlay']) for r in records.values()))
    fig, axes = plt.subplots(len(records), cols, figsize=(3 * cols, 3.2 * len(records)),
                             squeeze=False)
    for row, (label, rec) in enumerate(records.items()):
        for col, ax in enumerate(axes[row]):
            ax.axis('off')
            if col < len(rec['overlay']):
                entry = rec['overlay'][col]
                ax.imshow(draw_overlay(entry))
                ax.set_title(f'{label}\n{osp.basename(entry["image"])}: '
                             f'{len(entry["query_bboxes"])} queries IoU>{entry["threshold"]}',
                             fontsize=7)
    overlay_legend(fig, threshold=next((e['threshold'] for r in records.values()
                                        for e in r['overlay']), None))
    save_figure(fig, path, dpi)


def overlay_legend(fig, threshold):
    """The overlay's key under the panels: what the red and the yellow boxes are."""
    from matplotlib.lines import Line2D
    than = f' > {threshold}' if threshold is not None else ''
    handles = [Line2D([], [], color='red', linewidth=1.5, alpha=0.7,
                      label=f'query boxes (last decoder layer) with IoU{than} to a GT object'),
               Line2D([], [], color='gold', linewidth=2.5, linestyle='--',
                      label='GT objects')]
    fig.legend(handles=handles, loc='upper center', bbox_to_anchor=(0.5, 0.0), ncol=1,
               fontsize=8, frameon=False)


def main(argv=None):
    """Parse, load, measure, write the figures and the JSON."""
    from mmdet_ksdetr.analysis.common import load_models, prepare_out_dir, write_json
    from mmdet_ksdetr.analysis.query_affinity import DEFINITION, HIST_BINS
    from mmdet_ksdetr.utils.errors import InputError
    args = parse_args(argv)
    check_args(args)
    out_dir = prepare_out_dir(args.out_dir)
    models = load_models(args)
    check_models(models, models[0].cfg, args.thresholds)
    records, num_images = collect(models, args)
    if not any(r['num_objects'] for r in records.values()):
        raise InputError(f'the first {num_images} validation images hold no GT object: '
                         f'raise --num-images')
    plot_counts(records, args.thresholds, osp.join(out_dir, 'queries_per_object.png'),
                args.dpi)
    plot_closest(records, HIST_BINS, osp.join(out_dir, 'closest_query.png'), args.dpi)
    plot_overlay(records, osp.join(out_dir, 'overlay.png'), args.dpi)
    write_json(osp.join(out_dir, 'query_affinity.json'),
               dict(definition=DEFINITION, thresholds=args.thresholds, num_images=num_images,
                    hist_bins=list(HIST_BINS), models=records))
    for label, rec in records.items():
        avg = ', '.join(f'{v:.2f}' for v in rec['avg_queries_per_object'][-1])
        print(f'{label}: {rec["num_objects"]} objects, last layer avg #queries IoU>'
              f'{args.thresholds}: {avg}; closest query mean IoU '
              f'{rec["mean_best_iou"][-1]:.3f}, score {rec["mean_best_score"][-1]:.3f}')
    print(f'wrote {out_dir}/{{queries_per_object,closest_query,overlay}}.png and '
          f'query_affinity.json')


if __name__ == '__main__':
    from mmdet_ksdetr.analysis.common import run_main
    run_main(TOOL, main)
