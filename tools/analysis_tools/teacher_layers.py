"""Per-decoder-layer quality of a DETR teacher on its validation images, and how often an earlier
layer had a better box and score for the same query: what TPRD's teacher refinement repairs.

    python tools/analysis_tools/teacher_layers.py CONFIG CHECKPOINT --out-dir DIR \
        [--compare CONFIG2 CHECKPOINT2] [--labels A B] [--num-images 50] [--device cpu] \
        [--cfg-options data_root=...]

CONFIG is a DETR teacher (a detector config), or a distiller config whose checkpoint holds its
teacher (the distiller's teacher-to-GT matcher is then used). Writes to DIR:
``teacher_layers_earlier_better.png`` (layer x layer heat map), ``teacher_layers_quality.png``
(mean IoU and score of the GT-matched queries per layer, raw and refined),
``teacher_layers_refinement.png`` (positives and negatives the refinement changes per layer) and
``teacher_layers.json`` (every number; schema in ``mmdet_ksdetr/analysis/teacher_layers.py``).
"""
import argparse
import math
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

from mmdet_ksdetr.analysis.common import (add_common_args, load_models,  # noqa: E402
                                          prepare_out_dir, run_main, save_figure,
                                          val_batches, val_pipeline, write_json)

TOOL = 'teacher_layers.py'
FIGURES = ('teacher_layers_earlier_better.png', 'teacher_layers_quality.png',
           'teacher_layers_refinement.png')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    add_common_args(p)
    return p.parse_args(argv)


def _values(model, key):
    return [math.nan if row[key] is None else row[key] for row in model['layers']]


def plot_earlier_better(models, path):
    """Heat map per model: share of layer i's GT-matched queries for which layer j was better
    (count in brackets); j >= i greyed out."""
    import matplotlib.pyplot as plt
    import numpy as np
    fig, axes = plt.subplots(1, len(models), figsize=(3.6 * len(models) + 0.6, 3.4),
                             squeeze=False)
    shares = [np.array([[math.nan if v is None else v for v in row]
                        for row in m['earlier_better_share']], dtype=float) for m in models]
    vmax = max([np.nanmax(s) if np.isfinite(s).any() else 0.0 for s in shares] + [1e-6])
    cmap = plt.get_cmap('viridis').copy()
    cmap.set_bad('#dddddd')
    for ax, m, share in zip(axes[0], models, shares):
        L = m['num_layers']
        im = ax.imshow(np.ma.masked_invalid(share), cmap=cmap, vmin=0.0, vmax=vmax)
        for i in range(L):
            for j in range(i):
                if not math.isnan(share[i, j]):
                    ax.text(j, i, f'{share[i, j]:.0%}\n({m["earlier_better"][i][j]})',
                            ha='center', va='center', fontsize=8,
                            color='white' if share[i, j] < 0.6 * vmax else 'black')
        ticks = list(range(L))
        ax.set_xticks(ticks, [str(t + 1) for t in ticks])
        ax.set_yticks(ticks, [str(t + 1) for t in ticks])
        ax.set_xlabel('earlier layer j')
        ax.set_ylabel('layer i (its GT-matched queries)')
        ax.set_title(m['label'], fontsize=9)
    fig.colorbar(im, ax=axes[0].tolist(), label='share where layer j is better')
    fig.suptitle('earlier layer j: strictly higher IoU and score than layer i', fontsize=10)
    save_figure(fig, path)


def _grouped_bars(ax, models, series, ylabel):
    """Bars per layer, grouped by ``series``: ``(model index, key, name, style)`` tuples."""
    import matplotlib.pyplot as plt
    colors = plt.get_cmap('tab10').colors
    width = 0.8 / len(series)
    L = max(m['num_layers'] for m in models)
    for k, (mi, key, name, hatch) in enumerate(series):
        vals = _values(models[mi], key)
        xs = [i + 1 + (k - (len(series) - 1) / 2) * width for i in range(len(vals))]
        ax.bar(xs, vals, width, label=name, color=colors[mi % len(colors)],
               alpha=0.5 if hatch else 1.0, hatch=hatch, edgecolor='black', linewidth=0.4)
    ax.set_xticks(range(1, L + 1))
    ax.set_xlabel('decoder layer')
    ax.set_ylabel(ylabel)


def plot_quality(models, path):
    """Mean IoU and GT-class score of each layer's GT-matched queries, raw and refined."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, what in zip(axes, ('iou', 'score')):
        series = []
        for mi, m in enumerate(models):
            series += [(mi, f'mean_{what}', m['label'], ''),
                       (mi, f'refined_mean_{what}', f'{m["label"]} refined', '//')]
        name = 'IoU' if what == 'iou' else what
        _grouped_bars(ax, models, series, f'mean {name} (GT-matched queries)')
        for container in ax.containers:
            ax.bar_label(container, fmt='%.3f', fontsize=6, rotation=90, padding=2)
        ax.set_ylim(0, 1.1)
    axes[1].legend(fontsize=7, loc='upper left')
    save_figure(fig, path)


def plot_refinement(models, path):
    """Share of positives and of negatives whose target the refinement changes, per layer."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, (key, name) in zip(axes, (('pos_changed', 'positives'),
                                      ('neg_changed', 'negatives'))):
        _grouped_bars(ax, models, [(mi, f'{key}_share', m['label'], '')
                                   for mi, m in enumerate(models)],
                      f'share of {name} changed')
        for container, m in zip(ax.containers, models):
            ax.bar_label(container, labels=[str(r[key]) for r in m['layers']], fontsize=7)
        top = max([v for m in models for v in _values(m, f'{key}_share')
                   if not math.isnan(v)] + [0.01])
        ax.set_ylim(0, min(1.0, top * 1.25))
    axes[0].legend(fontsize=7, loc='upper left')
    fig.suptitle('TPRD refinement: targets changed (bar labels: counts)', fontsize=10)
    save_figure(fig, path)


def main(argv=None):
    from mmdet_ksdetr.analysis.teacher_layers import (assigner_summary, check_teacher,
                                                      collect_layer_counts, model_summaries,
                                                      summarise, teacher_of)
    args = parse_args(argv)
    out_dir = prepare_out_dir(args.out_dir)
    loaded = load_models(args)
    teachers = []
    for m in loaded:
        detector, assigner, source = teacher_of(m.model)
        check_teacher(detector, m.config)
        teachers.append((m, detector, assigner, source))
    entries = []
    for m, detector, assigner, source in teachers:
        counts, info = collect_layer_counts(detector, assigner,
                                            val_batches(m.cfg, args.num_images, args.device),
                                            val_pipeline(m.cfg))
        entries.append(summarise(counts, label=m.label, config=m.config,
                                 checkpoint=m.checkpoint, source=source,
                                 assigner=assigner_summary(assigner), **info))
    result = model_summaries(entries)
    for name, plot in zip(FIGURES, (plot_earlier_better, plot_quality, plot_refinement)):
        plot(entries, osp.join(out_dir, name))
    result['figures'] = list(FIGURES)
    write_json(osp.join(out_dir, 'teacher_layers.json'), result)
    print(f'{TOOL}: wrote {", ".join(FIGURES)} and teacher_layers.json to {out_dir}')
    return result


if __name__ == '__main__':
    run_main(TOOL, main)
