"""KS-DETR attention in the last encoder layer: GT foreground token mask, student vs teacher
attention for chosen tokens, and attention accuracy (share of the attention mass of foreground
tokens that lands on foreground tokens) averaged over validation images.

    python tools/analysis_tools/ks_attention.py KS_CONFIG KS_CKPT \
        [--compare BASELINE_CONFIG BASELINE_CKPT] [--num-images N] [--image-index I] \
        [--tokens X,Y ...] [--query-level L] --out-dir DIR

The model runs its normal GT-free forward (hooks record the last encoder self-attention); the
GT mask is built only for the analysis, and the teacher maps are computed from the teacher
weights on the GT-aware input. A baseline (no teacher) reports its student stream only.
Writes ``ks_attention_mask.png``, ``ks_attention_maps.png``, ``ks_attention_accuracy.png``
and ``ks_attention.json`` (schema: :mod:`mmdet_ksdetr.analysis.ks_attention`).
"""
import argparse
import os.path as osp
import sys
import textwrap

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from mmdet_ksdetr.analysis import common  # noqa: E402
from mmdet_ksdetr.analysis import ks_attention as ksa  # noqa: E402
from mmdet_ksdetr.models.ks_detr.ks_gt_mask import gt_foreground_token_mask  # noqa: E402
from mmdet_ksdetr.utils.errors import InputError  # noqa: E402

TOOL = 'ks_attention.py'
LEVEL_COLORS = ['red', 'orange', 'lime', 'cyan', 'magenta', 'yellow']


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    common.add_common_args(parser, default_num_images=50)
    parser.add_argument('--image-index', type=int, default=0,
                        help='validation image (index among the first --num-images) drawn in '
                        'the mask and attention figures (default 0)')
    parser.add_argument('--tokens', nargs='+', metavar='X,Y',
                        help='query tokens of the attention figure, as input-image pixels '
                        '(default: the centre of the largest GT box and the background token '
                        'farthest from it)')
    parser.add_argument('--query-level', type=int, default=0,
                        help='feature level of the query tokens for multi-scale models '
                        '(default 0, the finest)')
    return parser.parse_args(argv)


def parse_tokens(tokens):
    out = []
    for t in tokens or []:
        try:
            x, y = (float(v) for v in t.split(','))
        except ValueError:
            raise InputError(f'--tokens {t!r}: give X,Y input-image pixels, e.g. 40,60')
        out.append((x, y))
    return out


def check_models(models, query_level):
    """Every model a (KS-)DETR with a supported encoder, the first a KS one, and
    ``--query-level`` a level of each."""
    for m in models:
        ksa.encoder_attention_kind(common.unwrap_detector(m.model))
        attn = common.unwrap_detector(m.model).encoder.layers[-1].self_attn
        levels = getattr(attn, 'num_levels', 1)
        if not 0 <= query_level < levels:
            raise InputError(f'--query-level {query_level}: {m.label} has {levels} feature '
                             f'level(s), give 0 to {levels - 1}')
    attn = common.unwrap_detector(models[0].model).encoder.layers[-1].self_attn
    if not getattr(attn, 'teacher_streams', None):
        raise InputError(f'{models[0].config} is not a KS-DETR model (its last encoder layer '
                         f'has no teacher streams): give a KS-DETR config first and the '
                         f'baseline with --compare')


def analyse_image(det, batch, pipeline):
    """One image through the stock forward with hooks; mask, streams and fg masses."""
    data = det.data_preprocessor(batch, False)
    inputs, samples = data['inputs'], data['data_samples']
    with ksa.record_last_encoder_attention(det) as record:
        feats = det.extract_feat(inputs)
        enc_in, _ = det.pre_transformer(feats, samples)
        det.forward_encoder(**enc_in)
    shapes = enc_in.get('spatial_shapes')
    shapes = [feats[-1].shape[-2:]] if shapes is None else shapes
    shapes = [(int(h), int(w)) for h, w in (shapes.tolist() if torch.is_tensor(shapes)
                                            else shapes)]
    boxes = [common.gt_boxes_in_input_frame(s, pipeline).to(inputs.device) for s in samples]
    fg = gt_foreground_token_mask(samples, shapes, enc_in.get('feat_mask'), boxes)
    streams = ksa.stream_attention(det, record, fg)
    masses = {n: ksa.stream_fg_mass(s, fg, shapes) for n, s in streams.items()}
    return dict(samples=samples, shapes=shapes, boxes=boxes, fg=fg, streams=streams,
                masses=masses, valid=enc_in.get('feat_mask'))


def token_index(shapes, level, xy, input_shape):
    """Token (flattened index) of level ``level`` whose cell holds pixel ``xy``."""
    H, W = input_shape
    h, w = shapes[level]
    col = min(max(int(xy[0] / W * w), 0), w - 1)
    row = min(max(int(xy[1] / H * h), 0), h - 1)
    return sum(a * b for a, b in shapes[:level]) + row * w + col


def default_tokens(res, level, input_shape):
    boxes = res['boxes'][0]
    if len(boxes) == 0:
        return [(input_shape[1] / 2, input_shape[0] / 2)]
    b = boxes[(boxes[:, 2] - boxes[:, 0]).mul(boxes[:, 3] - boxes[:, 1]).argmax()].tolist()
    centre = ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)
    h, w = res['shapes'][level]
    start = sum(a * c for a, c in res['shapes'][:level])
    fg = res['fg'][0, start:start + h * w].view(h, w)
    valid = torch.ones_like(fg) if res['valid'] is None else \
        ~res['valid'][0, start:start + h * w].view(h, w).bool()
    ys, xs = torch.nonzero(valid & ~fg, as_tuple=True)
    if len(ys) == 0:
        return [centre]
    px = (xs.float() + 0.5) * input_shape[1] / w
    py = (ys.float() + 0.5) * input_shape[0] / h
    far = ((px - centre[0])**2 + (py - centre[1])**2).argmax()
    return [centre, (float(px[far]), float(py[far]))]


def canvas_image(batch, input_shape):
    """The input image (RGB, uint8) on a zero canvas of the padded input shape."""
    img = batch['inputs'][0].permute(1, 2, 0).numpy()[..., ::-1]  # BGR -> RGB
    canvas = np.zeros((*input_shape, 3), np.uint8)
    canvas[:img.shape[0], :img.shape[1]] = img
    return canvas


def level_mask_pixels(fg_level, input_shape):
    m = torch.nn.functional.interpolate(fg_level[None, None].float(), size=input_shape,
                                        mode='nearest')
    return m[0, 0].bool().cpu().numpy()


def draw_mask_figure(img, res, path):
    """One panel per feature level: the input image with that level's GT foreground tokens
    tinted and the GT boxes; 5 inches wide for one level, 4 for two, 3.2 from three on (at
    100 dpi: 500, 400, 320 px per panel)."""
    import matplotlib.pyplot as plt
    from mmengine.visualization import Visualizer
    levels = ksa.split_levels(res['fg'], res['shapes'])
    side = {1: 5.0, 2: 4.0}.get(len(levels), 3.2)
    aspect = img.shape[0] / img.shape[1]
    fig, axes = plt.subplots(1, len(levels), figsize=(side * len(levels), side * aspect + 1.3),
                             squeeze=False)
    for ax, lvl, (h, w), color in zip(axes[0], levels, res['shapes'], LEVEL_COLORS):
        vis = Visualizer(image=img)
        vis.draw_binary_masks(level_mask_pixels(lvl[0], img.shape[:2]), colors=color,
                              alphas=0.45)
        if len(res['boxes'][0]):
            vis.draw_bboxes(res['boxes'][0].cpu(), edge_colors='white', line_widths=1)
        ax.imshow(vis.get_image())
        ax.set_title(f'{h}x{w} tokens: {int(lvl[0].sum())}/{h * w} foreground', fontsize=10)
        ax.axis('off')
    fig.suptitle('GT foreground token mask per level (tinted: foreground tokens, '
                 'white: GT boxes)', fontsize=11)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.84, wspace=0.06)
    common.save_figure(fig, path, dpi=100)


def token_panels(label, res, tokens, input_shape):
    """Per stream and token: the figure data and JSON entry of its attention."""
    H, W = input_shape
    entries = []
    for t_idx, (x, y, level, index) in enumerate(tokens):
        entry = dict(x=x, y=y, level=level, index=index,
                     foreground=bool(res['fg'][0, index]), streams={})
        for name, s in res['streams'].items():
            e = dict(fg_mass=round(float(res['masses'][name][0, index]), 6))
            if 'attn' in s:
                h, w = res['shapes'][0]
                e['attention'] = s['attn'][0, index].view(h, w).cpu().numpy().round(6).tolist()
            else:
                wts = s['weights'][0, index] / s['weights'].shape[2]  # (heads, L, P)
                loc = s['locations'][0, index]
                lv = torch.arange(wts.shape[1], device=wts.device)[None, :, None].expand_as(wts)
                e['samples'] = torch.stack(
                    [loc[..., 0] * W, loc[..., 1] * H, lv.float(), wts], -1).reshape(
                        -1, 4).cpu().numpy().round(6).tolist()
            entry['streams'][name] = e
        entries.append(entry)
    return entries


LEVEL_MARKERS = ['o', 's', '^', 'D', 'v', 'P']
DENSE_TITLE = ('dense attention: colour = attention weight of each key token')
DEFORMABLE_TITLE = ('deformable attention: sampling points, colour = weight, '
                    'marker = feature level')


def _draw_box_and_token(ax, boxes, tok):
    from matplotlib.patches import Rectangle
    for x1, y1, x2, y2 in np.asarray(boxes).reshape(-1, 4):
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor='white',
                               linewidth=1.2))
    ax.scatter([tok['x']], [tok['y']], marker='X', s=140, c='white', edgecolors='black',
               linewidths=1.0, zorder=5)


def _draw_dense(ax, e, extent, vmax):
    heat = np.asarray(e['attention'], dtype=np.float32)  # (h, w) token cells, unblurred
    return ax.imshow(heat, extent=extent, cmap='viridis', alpha=0.6, vmin=0.0, vmax=vmax,
                     interpolation='nearest')


def _draw_deformable(ax, e, width, height, vmax):
    s = np.array(e['samples']).reshape(-1, 4)  # x, y (input pixels), level, weight
    inside = (s[:, 3] > 1e-3) & (s[:, 0] >= 0) & (s[:, 1] >= 0) & \
        (s[:, 0] < width) & (s[:, 1] < height)
    mappable = None
    for level in sorted(set(int(v) for v in s[inside, 2])):
        pts = s[inside & (s[:, 2] == level)]
        mappable = ax.scatter(pts[:, 0], pts[:, 1], c=pts[:, 3], cmap='plasma', vmin=0.0,
                              vmax=vmax, s=20 + 400 * pts[:, 3] / vmax,
                              marker=LEVEL_MARKERS[level % len(LEVEL_MARKERS)],
                              edgecolors='black', linewidths=0.4, zorder=4)
    return mappable


def _shared_vmax(per_model, key):
    """The largest attention weight of all panels of one kind (one colour scale)."""
    vals = [np.max(np.asarray(e[key])[..., -1] if key == 'samples' else e[key])
            for ents in per_model.values() for tok in ents for e in tok['streams'].values()
            if key in e and len(e[key])]
    return max(max(vals) if vals else 1.0, 1e-6)


def draw_attention_figure(img, boxes, per_model, path):
    """Rows: each model's streams (``ks_share_a`` shares the student map: drawn once, in the
    student row); columns: the query tokens. Dense maps are a heat map of the token grid,
    deformable attention its sampling points; one colour bar per kind, a legend of the levels
    for deformable attention, and a title that names the kind drawn."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    H, W = img.shape[:2]
    gray = img.mean(-1).astype(np.uint8)  # lets colours stand out
    rows = [(label, name) for label, ents in per_model.items() for name in ents[0]['streams']
            if name != 'ks_share_a']
    ncol = max(len(ents) for ents in per_model.values())
    side = 3.6
    fig, axes = plt.subplots(len(rows), ncol, figsize=(side * ncol + 1.4,
                                                       side * H / W * len(rows) + 1.0),
                             squeeze=False)
    vmax = dict(dense=_shared_vmax(per_model, 'attention'),
                deformable=_shared_vmax(per_model, 'samples'))
    mappables, levels = {}, set()
    for r, (label, name) in enumerate(rows):
        axes[r][0].set_ylabel(f'{textwrap.fill(label, 22)}\n{name}', fontsize=9)
        for c in range(ncol):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(per_model[label]):
                ax.axis('off')
                continue
            tok = per_model[label][c]
            e = tok['streams'][name]
            ax.imshow(gray, cmap='gray', vmin=0, vmax=255, extent=(0, W, H, 0))
            if 'attention' in e:
                mappables['dense'] = _draw_dense(ax, e, (0, W, H, 0), vmax['dense'])
            else:
                m = _draw_deformable(ax, e, W, H, vmax['deformable'])
                mappables['deformable'] = m or mappables.get('deformable')
                levels.update(int(v) for v in np.asarray(e['samples'])[:, 2])
            _draw_box_and_token(ax, boxes, tok)
            ax.set_xlim(0, W)
            ax.set_ylim(H, 0)
            kind = 'fg' if tok['foreground'] else 'bg'
            ax.set_title(f'{kind} token {c}: fg mass {e["fg_mass"]:.2f}', fontsize=9)
    for kind, label in (('dense', 'attention weight'), ('deformable', 'sampling weight')):
        if mappables.get(kind) is not None:
            fig.colorbar(mappables[kind], ax=axes, shrink=0.6, pad=0.02, label=label)
    if levels:
        handles = [Line2D([], [], marker=LEVEL_MARKERS[lv % len(LEVEL_MARKERS)], ls='',
                          color='gray', markeredgecolor='black', label=f'level {lv}')
                   for lv in sorted(levels)]
        fig.legend(handles=handles, loc='lower center', ncol=len(handles), fontsize=9,
                   bbox_to_anchor=(0.45, 0.0), frameon=False)
    titles = [t for k, t in (('dense', DENSE_TITLE), ('deformable', DEFORMABLE_TITLE))
              if k in mappables]
    fig.suptitle('last encoder layer attention (X: query token, white: GT boxes; ks_share_a '
                 'shares the student map)\n' + '\n'.join(titles), fontsize=10)
    common.save_figure(fig, path, dpi=100)


def draw_accuracy_figure(summary, path):
    import matplotlib.pyplot as plt
    names = list(dict.fromkeys(n for m in summary for n in m['streams']))
    fig, ax = plt.subplots(figsize=(3.0 + 2.2 * len(summary), 4.2))
    width = 0.8 / len(names)
    for k, name in enumerate(names):
        xs = [i + (k - (len(names) - 1) / 2) * width for i, m in enumerate(summary)
              if name in m['streams']]
        vals = [m['streams'][name]['accuracy'] or 0.0 for m in summary if name in m['streams']]
        ax.bar(xs, vals, width, label=name)
        for x, v in zip(xs, vals):
            ax.text(x, v, f'{v:.3f}', ha='center', va='bottom', fontsize=8)
    for i, m in enumerate(summary):
        ax.hlines(m['chance_level'] or 0.0, i - 0.45, i + 0.45, colors='k',
                  linestyles='dashed', linewidth=0.8,
                  label='fg share of tokens' if i == 0 else None)
    ax.set_xticks(range(len(summary)))
    ax.set_xticklabels([textwrap.fill(m['label'], 24) for m in summary], fontsize=9)
    ax.set_ylabel('attention accuracy')
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.set_title(f'fg -> fg share of attention mass, mean over '
                 f'{summary[0]["images_with_foreground"]} images', fontsize=10)
    common.save_figure(fig, path, dpi=100)


def analyse_model(m, args, tokens_xy):
    det = common.unwrap_detector(m.model)
    pipeline = common.val_pipeline(m.cfg)
    per_image = {}
    fg_frac, chance = [], []
    figure = None
    for i, batch in enumerate(common.val_batches(m.cfg, args.num_images, args.device)):
        with torch.no_grad():
            res = analyse_image(det, batch, pipeline)
        for name, mass in res['masses'].items():
            per_image.setdefault(name, []).extend(ksa.attention_accuracy(mass, res['fg']))
        chance.extend(ksa.foreground_share(res['fg'], res['valid']))
        fg_frac.append([float(lvl.float().mean()) for lvl in ksa.split_levels(
            res['fg'], res['shapes'])])
        if i == args.image_index:
            figure = (batch, res)
    if figure is None:
        raise InputError(f'--image-index {args.image_index}: only {i + 1} validation images '
                         f'were analysed (--num-images {args.num_images})')
    if not any(v is not None for v in per_image['student']):
        raise InputError(f'none of the {i + 1} validation images analysed has a foreground '
                         f'token (GT box): raise --num-images or check the annotations')
    batch, res = figure
    input_shape = tuple(res['samples'][0].batch_input_shape)
    level = args.query_level
    xy = tokens_xy or default_tokens(res, level, input_shape)
    tokens = [(x, y, level, token_index(res['shapes'], level, (x, y), input_shape))
              for x, y in xy]
    streams = {}
    for name, values in per_image.items():
        done = [v for v in values if v is not None]
        streams[name] = dict(attention_map=res['streams'][name]['map'],
                             accuracy=round(float(np.mean(done)), 6) if done else None,
                             per_image=[None if v is None else round(v, 6) for v in values])
    summary = dict(label=m.label, config=m.config, checkpoint=m.checkpoint,
                   detector=type(det).__name__,
                   attention='deformable' if 'weights' in res['streams']['student'] else 'dense',
                   ks=len(streams) > 1,
                   images_with_foreground=sum(v is not None for v in per_image['student']),
                   foreground_token_fraction=np.mean(fg_frac, 0).round(6).tolist(),
                   chance_level=round(float(np.mean([c for c in chance if c])), 6)
                   if any(chance) else None,
                   streams=streams)
    return summary, batch, res, token_panels(m.label, res, tokens, input_shape)


def main(argv=None):
    args = parse_args(argv)
    tokens_xy = parse_tokens(args.tokens)
    if args.image_index < 0 or 0 < args.num_images <= args.image_index:
        raise InputError(f'--image-index {args.image_index}: give an index from 0 to '
                         f'--num-images - 1')
    models = common.load_models(args)
    check_models(models, args.query_level)
    out = common.prepare_out_dir(args.out_dir)
    summaries, panels = [], {}
    for k, m in enumerate(models):
        summary, batch, res, entries = analyse_model(m, args, tokens_xy)
        summaries.append(summary)
        panels[m.label] = entries
        if k == 0:
            img = canvas_image(batch, tuple(res['samples'][0].batch_input_shape))
            fig_res = res
    files = dict(mask='ks_attention_mask.png', attention='ks_attention_maps.png',
                 accuracy='ks_attention_accuracy.png')
    draw_mask_figure(img, fig_res, osp.join(out, files['mask']))
    draw_attention_figure(img, fig_res['boxes'][0].cpu(), panels,
                          osp.join(out, files['attention']))
    draw_accuracy_figure(summaries, osp.join(out, files['accuracy']))
    levels = [dict(shape=[h, w], foreground=lvl[0].int().tolist())
              for lvl, (h, w) in zip(ksa.split_levels(fig_res['fg'], fig_res['shapes']),
                                     fig_res['shapes'])]
    figure = dict(image_index=args.image_index, img_path=fig_res['samples'][0].img_path,
                  input_shape=list(fig_res['samples'][0].batch_input_shape),
                  gt_boxes=fig_res['boxes'][0].cpu().numpy().round(2).tolist(),
                  levels=levels, tokens=panels)
    common.write_json(osp.join(out, 'ks_attention.json'),
                      dict(tool='ks_attention', definition=ksa.DEFINITION,
                           num_images=len(summaries[0]['streams']['student']['per_image']),
                           models=summaries, figure=figure, files=files))
    for s in summaries:
        accs = ', '.join(f'{n} {v["accuracy"]}' for n, v in s['streams'].items())
        print(f'{s["label"]}: attention accuracy {accs}')
    print(f'wrote {osp.join(out, "ks_attention.json")} and 3 figures')


if __name__ == '__main__':
    common.run_main(TOOL, main)
