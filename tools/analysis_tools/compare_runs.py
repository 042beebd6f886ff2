"""Validation metrics and training losses of two or more runs on one figure ("method vs
baseline"), from the json logs mmengine writes into every work dir.

    python tools/analysis_tools/compare_runs.py WORK_DIR [WORK_DIR ...] [--labels A B ...] \
        [--keys coco/bbox_mAP loss loss_cls ...] [--loss-x {epoch,iter}] --out-dir DIR

A WORK_DIR is a ``tools/train.py`` work dir (every ``<timestamp>/vis_data/scalars.json`` in it
is read in time order, so resumed runs join up; a later log wins for the same step) or one such
json file. A key with a ``/`` (``coco/bbox_mAP``, ``pascal_voc/mAP``) is a validation metric,
plotted against the epoch (the iteration for iteration-based training); any other key
(``loss``, ``loss_cls``, ``d0.loss_bbox``, ``lr``, ``grad_norm``) is a training value, plotted
per logged iteration (``--loss-x iter``) or as the mean of the logged values of each epoch
(``--loss-x epoch``, the default for epoch-based runs). Each logged training value is already
mmengine's mean over the logger interval. NaN/inf values (and epochs holding one) are ``null``
in the JSON and gaps in the figure.

``loss`` is the sum of every logged loss term, so a KS-DETR run's total includes its teacher
streams (``ks_share_v.*``) and a distillation run's its ``distill.*`` terms: the legend says
so for such a run, and a dashed line shows its loss without those terms (what a baseline
logs).

Writes ``DIR/compare_runs.png`` (one panel per key, one line per run) and
``DIR/compare_runs.json`` with the numbers behind every line::

    {"runs": [{"label": "A", "work_dir": "...", "logs": ["..."]}, ...],
     "loss_x": "epoch",
     "keys": {"coco/bbox_mAP": {"x": "epoch", "series": {"A": {"x": [1, 2], "y": [.1, .2]}}},
              "loss": {"x": "epoch", "series": {...},
                       "extra_streams": {"B": ["ks_share_v"]},
                       "without_extra_streams": {"B": {"x": [...], "y": [...]}}}}}

Runs that lack a key are left out of its panel (and named on stderr); a key no run has, a work
dir without logs or a malformed log stops with one line ``compare_runs.py: error: ...``.
Both files are written atomically.
"""
import argparse
import glob
import io
import json
import math
import os
import os.path as osp
import re
import sys
from collections import defaultdict

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

DEFAULT_KEYS = ['coco/bbox_mAP', 'loss', 'loss_cls', 'loss_bbox', 'loss_iou']
TOOL = 'compare_runs.py'


class CompareError(ValueError):
    """Bad input; the message says what to fix."""


def find_logs(path):
    """The json log files of a work dir, oldest run first (or ``[path]`` for a json file)."""
    if osp.isfile(path):
        return [path]
    if not osp.isdir(path):
        raise CompareError(f'work dir "{path}" does not exist')
    logs = []
    for vis in sorted(glob.glob(osp.join(path, '*', 'vis_data'))):
        stamp = osp.basename(osp.dirname(vis))
        for name in ('scalars.json', f'{stamp}.json'):
            if osp.isfile(osp.join(vis, name)):
                logs.append(osp.join(vis, name))
                break
    if not logs:
        raise CompareError(f'work dir "{path}" has no mmengine json logs (looked for '
                           f'{osp.join(path, "<timestamp>", "vis_data", "scalars.json")})')
    return logs


def _read_rows(log):
    """The json rows of one log; a cut-off last line (a run still writing) is skipped."""
    with open(log) as f:
        lines = [line for line in f.read().splitlines() if line.strip()]
    rows = []
    for i, line in enumerate(lines):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                print(f'{TOOL}: note: skipped the unfinished last line of "{log}"',
                      file=sys.stderr)
                continue
            raise CompareError(f'"{log}" line {i + 1} is not JSON: not an mmengine json log')
        if not isinstance(row, dict) or 'step' not in row:
            raise CompareError(f'"{log}" line {i + 1} has no "step": not an mmengine json log')
        rows.append(row)
    return rows


def load_run(path):
    """Training rows by iteration and validation rows by step of one work dir.

    Returns a dict with ``logs``, ``train`` ({iteration: row}), ``val`` ({step: row}) and
    ``by_epoch`` (training rows carry an ``epoch``, so validation steps are epochs).
    """
    logs = find_logs(path)
    train, val = {}, {}
    for log in logs:
        for row in _read_rows(log):
            is_val = any('/' in k for k in row) and 'iter' not in row
            (val if is_val else train)[row['step']] = row
    if not train and not val:
        raise CompareError(f'"{path}": its json logs hold no rows')
    by_epoch = all('epoch' in row for row in train.values()) if train else True
    return dict(logs=logs, train=train, val=val, by_epoch=by_epoch)


def _number(value):
    return None if value is None or (isinstance(value, float) and not math.isfinite(value)) \
        else float(value)


def series(run, key, loss_x):
    """(x unit, xs, ys) of ``key`` in one run, or None if the run never logged it."""
    if '/' in key:
        points = [(step, row[key]) for step, row in sorted(run['val'].items()) if key in row]
        unit = 'epoch' if run['by_epoch'] else 'iter'
    elif loss_x == 'iter':
        points = [(step, row[key]) for step, row in sorted(run['train'].items()) if key in row]
        unit = 'iter'
    else:
        per_epoch = defaultdict(list)
        for _, row in sorted(run['train'].items()):
            if key in row:
                per_epoch[row['epoch']].append(_number(row[key]))
        # an epoch with a NaN/inf value has no mean (a gap), never the mean of the rest
        points = [(e, None if None in v else sum(v) / len(v))
                  for e, v in sorted(per_epoch.items())]
        unit = 'epoch'
    if not points:
        return None
    return unit, [p[0] for p in points], [_number(p[1]) for p in points]


def extra_streams(run):
    """The extra training streams inside a run's ``loss``: mmengine logs ``loss`` as the sum
    of every term with "loss" in its name, so a KS-DETR run's total includes its teacher
    streams (``ks_share_v.loss_cls``, ...) and a distillation run's its ``distill.*`` terms.
    Returns the sorted prefixes ``P`` of the ``P.<...loss...>`` keys, leaving out auxiliary
    decoder layers (``d0``, ``d1``, ...) and a distiller's ``student``."""
    prefixes = set()
    for row in run['train'].values():
        for key in row:
            prefix = key.split('.', 1)[0]
            if '.' in key and 'loss' in key and prefix != 'student' and \
                    not re.fullmatch(r'd\d+', prefix):
                prefixes.add(prefix)
    return sorted(prefixes)


MAIN_LOSS = '_loss_without_extra_streams'


def add_main_loss(run, prefixes):
    """Give every training row of ``run`` that logged ``loss`` the value ``loss`` minus the
    terms of the extra streams ``prefixes`` (None when one of them is not finite)."""
    for row in run['train'].values():
        if 'loss' not in row:
            continue
        terms = [_number(v) for k, v in row.items()
                 if 'loss' in k and k.split('.', 1)[0] in prefixes and '.' in k]
        total = _number(row['loss'])
        row[MAIN_LOSS] = None if total is None or None in terms else total - sum(terms)


def split_total_loss(runs, labels, keys, loss_x):
    """For the ``loss`` panel: which runs' totals hold extra streams (``extra_streams``:
    {label: [prefix, ...]}) and those runs' loss without them (``without_extra_streams``:
    {label: {x, y}}), so that a method and its baseline are compared on the same terms."""
    panel = keys.get('loss')
    if panel is None:
        return
    panel['extra_streams'], panel['without_extra_streams'] = {}, {}
    for run, label in zip(runs, labels):
        prefixes = extra_streams(run)
        if not prefixes or label not in panel['series']:
            continue
        add_main_loss(run, prefixes)
        found = series(run, MAIN_LOSS, loss_x)
        if found is not None:
            panel['extra_streams'][label] = prefixes
            panel['without_extra_streams'][label] = dict(x=found[1], y=found[2])


def compare(runs, labels, keys, loss_x, explicit_keys):
    """The ``keys`` part of the JSON: for each key, its x unit and each run's series."""
    out = {}
    for key in keys:
        found = {}
        for run, label in zip(runs, labels):
            s = series(run, key, loss_x)
            if s is not None:
                found[label] = s
        if not found:
            if explicit_keys:
                raise CompareError(f'no run has the key "{key}" (keys of the first run: '
                                   f'{", ".join(_known_keys(runs[0]))})')
            print(f'{TOOL}: note: no run has "{key}"; left out', file=sys.stderr)
            continue
        units = {s[0] for s in found.values()}
        if len(units) > 1:
            raise CompareError(f'"{key}": the runs mix epoch-based and iteration-based '
                               'training; compare runs of one kind or use --loss-x iter')
        missing = [label for label in labels if label not in found]
        if missing:
            print(f'{TOOL}: note: {", ".join(missing)} lack "{key}"', file=sys.stderr)
        out[key] = dict(x=units.pop(), series={label: dict(x=xs, y=ys)
                                               for label, (_, xs, ys) in found.items()})
    if not out:
        raise CompareError(f'none of the keys {keys} is in the logs; give --keys (keys of the '
                           f'first run: {", ".join(_known_keys(runs[0]))})')
    return out


def _known_keys(run):
    keys = {k for rows in (run['train'], run['val']) for row in rows.values() for k in row}
    return sorted(keys - {'step', 'epoch', 'iter'})


def plot(result, write):
    """Draw one panel per key and hand the PNG bytes to ``write(file)``; returns the (closed)
    figure. The ``loss`` panel is the logged total; a run whose total includes extra streams
    (KS-DETR teachers, distillation terms) says so in the legend and gets a dashed line of its
    loss without them."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    keys = list(result)
    cols = min(3, len(keys))
    rows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        extra = result[key].get('extra_streams') or {}
        for label, s in result[key]['series'].items():
            ys = [float('nan') if y is None else y for y in s['y']]
            streams = ', '.join(f'{p}.*' for p in extra.get(label, ()))
            line, = ax.plot(s['x'], ys, marker='o' if len(ys) <= 50 else None, markersize=3,
                            label=f'{label}: total incl. {streams}' if streams else label)
            if streams:
                main = result[key]['without_extra_streams'][label]
                ax.plot(main['x'], [float('nan') if y is None else y for y in main['y']],
                        linestyle='--', color=line.get_color(),
                        marker='o' if len(ys) <= 50 else None, markersize=3,
                        label=f'{label}: without {streams}')
        ax.set_title('loss (sum of every logged loss term)' if key == 'loss' else key)
        ax.set_xlabel('epoch' if result[key]['x'] == 'epoch' else 'iteration')
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis('off')
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format='png', dpi=100)
    plt.close(fig)
    write(buf.getvalue())
    return fig


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('work_dirs', nargs='+', metavar='WORK_DIR')
    p.add_argument('--labels', nargs='+', help='one per WORK_DIR (default: folder names)')
    p.add_argument('--keys', nargs='+', help=f'default: {" ".join(DEFAULT_KEYS)}, those present')
    p.add_argument('--loss-x', choices=['epoch', 'iter'],
                   help='x of training values: epoch means (default for epoch-based runs) or '
                   'logged iterations')
    p.add_argument('--out-dir', required=True)
    return p.parse_args(argv)


def _labels(args):
    if args.labels is None:
        labels = [osp.basename(osp.normpath(w)) for w in args.work_dirs]
        return labels if len(set(labels)) == len(labels) else list(args.work_dirs)
    if len(args.labels) != len(args.work_dirs):
        raise CompareError(f'{len(args.labels)} --labels for {len(args.work_dirs)} work dirs: '
                           'give one label per work dir')
    if len(set(args.labels)) != len(args.labels):
        raise CompareError(f'--labels must differ, got {args.labels}')
    return args.labels


def run(args):
    """Read, compare, write; returns the JSON dict."""
    from mmdet_ksdetr.utils.checkpoint_io import atomic_write
    labels = _labels(args)
    runs = [load_run(w) for w in args.work_dirs]
    loss_x = args.loss_x or ('epoch' if all(r['by_epoch'] for r in runs) else 'iter')
    if loss_x == 'epoch' and not all(r['by_epoch'] for r in runs):
        raise CompareError('--loss-x epoch: a run trained by iterations has no epochs; '
                           'use --loss-x iter')
    keys = compare(runs, labels, args.keys or DEFAULT_KEYS, loss_x, args.keys is not None)
    split_total_loss(runs, labels, keys, loss_x)
    result = dict(runs=[dict(label=label, work_dir=osp.abspath(w), logs=r['logs'])
                        for label, w, r in zip(labels, args.work_dirs, runs)],
                  loss_x=loss_x, keys=keys)
    os.makedirs(args.out_dir, exist_ok=True)
    png = osp.join(args.out_dir, 'compare_runs.png')
    plot(keys, lambda data: atomic_write(png, lambda f: f.write(data)))
    atomic_write(osp.join(args.out_dir, 'compare_runs.json'),
                 lambda f: json.dump(result, f, indent=1, allow_nan=False), mode='w')
    print(f'wrote {png} and {osp.join(args.out_dir, "compare_runs.json")}')
    return result


def main(argv=None):
    args = parse_args(argv)
    try:
        return run(args)
    except (CompareError, OSError) as e:
        sys.exit(f'{TOOL}: error: {e}')


if __name__ == '__main__':
    main()
