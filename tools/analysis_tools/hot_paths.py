"""Time the hot paths of the KS-DETR, DETRDistill, TPRD and QSKD training steps at realistic
sizes.

    python tools/analysis_tools/hot_paths.py \
        [--paths dkd gt_mask triple_attn hungarian_kd qskd] [--runs 9] [--release] [--threads 1]

Sizes: batch 2, 6 decoder layers, 300 queries, 80 classes, an 800x1333 input (the KS encoder
layer sees its 25x42 stride-32 tokens, the GT mask is built for the four levels of strides 8-64,
15 GT boxes per image; TPRD has 15 positive pairs per image and layer; QSKD's encoder memory
has the 22223 tokens of the four levels, 256 channels, and 100 selected teacher queries per
image and layer: 15 positives and 85 hard negatives).

* ``dkd``: TPRD's decoupled class KD over the matched pairs of every layer;
* ``gt_mask``: KS-DETR's GT foreground token mask (forward only: it has no gradient);
* ``triple_attn``: KS-DETR's triple attention (student + two teacher streams, 256 dims,
  8 heads, with a key padding mask);
* ``hungarian_kd``: DETRDistill's Hungarian logits KD (matching of every layer and image,
  then the class / L1 / GIoU losses);
* ``qskd``: QSKD's attention-guided feature loss of every decoder layer (the mask splatted
  from the teacher's deformable cross-attention, 8 heads, 4 levels, 4 points, then the masked
  MSE of the encoder memories; gradient to the student memory).

Each is timed in process CPU time (``time.process_time``: robust to other jobs on the
machine), forward and forward + backward, median of ``--runs``. ``--release`` also times a
plain-torch transcription of each release's formula on the same inputs, interleaved with ours,
checks that both give the same outputs and prints the ratio release / ours (> 1: ours faster).
"""
import argparse
import os.path as osp
import sys
import types

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from scipy.optimize import linear_sum_assignment  # noqa: E402

from mmdet_ksdetr.utils.benchmark import interleaved_medians  # noqa: E402

PATHS = ('dkd', 'gt_mask', 'triple_attn', 'hungarian_kd', 'qskd')
L, B, Q, C = 6, 2, 300, 80
IMG = (800, 1333)
LEVELS = [(100, 167), (50, 84), (25, 42), (13, 21)]


def _boxes(gen, n=15):
    H, W = IMG
    xy = torch.rand(n, 2, generator=gen) * torch.tensor([W * 0.8, H * 0.8])
    wh = (torch.rand(n, 2, generator=gen) * 0.3 + 0.02) * torch.tensor([W, H])
    return torch.cat([xy, torch.minimum(xy + wh, torch.tensor([W - 1.0, H - 1.0]))], 1)


# ----------------------------------------------------------------- release transcriptions
def release_dkd(zs, zt, labels, T=1.0, alpha=1.0, beta=1.0):
    """TPRD release: KL of every pair, TCKD + NCKD of the positive pairs (mdistiller's DKD
    form: one-hot masks, ``-1000`` on the target logit), written over their KL rows."""
    Cn = zs.shape[-1]
    zs, zt, labels = zs.reshape(-1, Cn), zt.reshape(-1, Cn), labels.reshape(-1)
    kl = F.kl_div(F.log_softmax(zs / T, -1), F.softmax(zt / T, -1), reduction='none').sum(-1)
    pos = (labels >= 0).nonzero().squeeze(1)
    if pos.numel():
        s, t = zs[pos] / T, zt[pos] / T
        gt = F.one_hot(labels[pos], Cn).float()
        ps, pt = F.softmax(s, -1), F.softmax(t, -1)
        ps2 = torch.stack([(ps * gt).sum(-1), (ps * (1 - gt)).sum(-1)], -1)
        pt2 = torch.stack([(pt * gt).sum(-1), (pt * (1 - gt)).sum(-1)], -1)
        tckd = F.kl_div(torch.log(ps2), pt2, reduction='none').sum(-1)
        nckd = F.kl_div(F.log_softmax(s - 1000 * gt, -1), F.softmax(t - 1000 * gt, -1),
                        reduction='none').sum(-1)
        kl = kl.index_put((pos, ), alpha * tckd + beta * nckd)
    return kl * T * T


def release_gt_mask(boxes, shape, levels):
    """KS-DETR release: paint every box on a zero canvas, resize it to every level."""
    canvas = torch.zeros(len(boxes), 1, *shape)
    for i, bx in enumerate(boxes):
        for x1, y1, x2, y2 in bx.long().tolist():
            canvas[i, 0, y1:y2, x1:x2] = 1
    return torch.cat([
        F.interpolate(canvas, size=lv, mode='bilinear', align_corners=True).flatten(1) > 0
        for lv in levels], 1)


def release_triple_attn(m, x, x_t, pos, kpm):
    """KS-DETR release (triple attention): q scaled first, one ``baddbmm`` with the mask per
    attention map, separate products per stream, shared out_proj, residual."""
    Bn, N, E = x.shape
    h = m.num_heads
    d = E // h
    w, b = m.attn.in_proj_weight, m.attn.in_proj_bias
    tw, tb = m.teacher_in_proj_weight, m.teacher_in_proj_bias

    def heads(t):
        return t.view(Bn, N, h, d).transpose(1, 2).reshape(Bn * h, N, d)

    q = heads(F.linear(x + pos, w[:E], b[:E]) * d**-0.5)
    k = heads(F.linear(x + pos, w[E:2 * E], b[E:2 * E]))
    v = heads(F.linear(x, w[2 * E:], b[2 * E:]))
    q_t = heads(F.linear(x_t + pos, tw[:E], tb[:E]) * d**-0.5)
    k_t = heads(F.linear(x_t + pos, tw[E:2 * E], tb[E:2 * E]))
    v_t = heads(F.linear(x_t, tw[2 * E:], tb[2 * E:]))
    mask = torch.zeros(Bn, 1, 1, N).masked_fill(kpm[:, None, None], float('-inf'))
    mask = mask.expand(Bn, h, 1, N).reshape(Bn * h, 1, N)
    a = torch.baddbmm(mask, q, k.transpose(1, 2)).softmax(-1)
    a_t = torch.baddbmm(mask, q_t, k_t.transpose(1, 2)).softmax(-1)
    outs = []
    for attn, val in ((a, v), (a_t, v), (a, v_t)):
        o = torch.bmm(attn, val).view(Bn, h, N, d).transpose(1, 2).reshape(Bn, N, E)
        outs.append(x + m.attn.out_proj(o))
    return outs


def _giou_matrix(a, b):
    """DETR-style pairwise GIoU of xyxy boxes ``(n, 4) x (m, 4)``."""
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt = torch.max(a[:, None, :2], b[:, :2])
    rb = torch.min(a[:, None, 2:], b[:, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = (area_a[:, None] + area_b - inter).clamp(min=1e-6)
    lt = torch.min(a[:, None, :2], b[:, :2])
    rb = torch.max(a[:, None, 2:], b[:, 2:])
    wh = (rb - lt).clamp(min=0)
    enclose = (wh[..., 0] * wh[..., 1]).clamp(min=1e-6)
    return inter / union - (enclose - union) / enclose


def _xyxy(b):
    cx, cy, w, h = b.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)


def release_hungarian_kd(s_logits, s_boxes, t_probs, t_boxes, factors):
    """DETRDistill release: per layer and image a soft-BCE + 5 L1 - 2 GIoU cost and a scipy
    assignment, then BCE (/ B*Ns), L1 and GIoU (/ pairs) of the matched pairs."""
    total = 0
    Ln, Bn, Ns, _ = s_logits.shape
    for l in range(Ln):
        s_idx, t_idx = [], []
        for i in range(Bn):
            with torch.no_grad():
                zl, pt = s_logits[l, i], t_probs[l, i]
                cost = F.softplus(zl).sum(-1, keepdim=True) - zl @ pt.T
                cost = cost + 5 * torch.cdist(s_boxes[l, i], t_boxes[l, i], p=1)
                cost = cost - 2 * _giou_matrix(_xyxy(s_boxes[l, i]) * factors[i],
                                               _xyxy(t_boxes[l, i]) * factors[i])
            r, c = linear_sum_assignment(cost.numpy())
            s_idx.append(torch.as_tensor(r))
            t_idx.append(torch.as_tensor(c))
        si, ti = torch.stack(s_idx), torch.stack(t_idx)
        target = torch.zeros_like(s_logits[l])
        bi = torch.arange(Bn)[:, None]
        target[bi, si] = t_probs[l][bi, ti]
        loss_cls = F.binary_cross_entropy_with_logits(s_logits[l], target,
                                                      reduction='sum') / (Bn * Ns)
        sb, tb = s_boxes[l][bi, si], t_boxes[l][bi, ti]
        n = max(si.numel(), 1)
        loss_l1 = (sb - tb).abs().sum() / n
        fa = factors[:, None]
        a, b_ = _xyxy(sb) * fa, _xyxy(tb) * fa
        lt, rb = torch.max(a[..., :2], b_[..., :2]), torch.min(a[..., 2:], b_[..., 2:])
        inter = (rb - lt).clamp(min=0).prod(-1)
        union = ((a[..., 2:] - a[..., :2]).prod(-1) + (b_[..., 2:] - b_[..., :2]).prod(-1) -
                 inter).clamp(min=1e-6)
        enc = (torch.max(a[..., 2:], b_[..., 2:]) -
               torch.min(a[..., :2], b_[..., :2])).clamp(min=0).prod(-1).clamp(min=1e-6)
        giou = inter / union - (enc - union) / enc
        total = total + loss_cls + 5 * loss_l1 + 2 * (1 - giou).sum() / n
    return total


def release_qskd_feature_loss(fs, ft, weights, locations, shapes, sel_idx, sel_giou):
    """TPRD release (QSKD): every teacher query's cross-attention splatted on the token grid as
    one (B, Q, S) map (each sampling point's weight shared among its 4 neighbour cells by the
    area to the opposite corner, cells outside dropped), per image the mean over the selected
    queries of (1 + GIoU) x map, divided by its maximum (at least 0.01), then the MSE of the
    masked teacher and student memories."""
    Bn, Qn, H, Lv, P = weights.shape
    sizes = shapes[:, 0] * shapes[:, 1]
    starts = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
    # (level, point, head) on one axis, as the release flattens them
    loc = locations.permute(0, 1, 3, 4, 2, 5).flatten(2, 4)
    w = weights.permute(0, 1, 3, 4, 2).flatten(2, 4)
    wh = shapes.flip(-1).repeat_interleave(P * H, 0)  # (w, h) of each entry's level
    width, start = wh[:, 0], starts.repeat_interleave(P * H)
    xy = loc * wh
    low = xy.floor().long()
    maps = torch.zeros(Bn, Qn, int(sizes.sum()), dtype=weights.dtype)
    for dx, dy in ((0, 0), (0, 1), (1, 0), (1, 1)):
        cell = low + torch.tensor([dx, dy])
        opposite = low + torch.tensor([1 - dx, 1 - dy])
        share = (xy - opposite).prod(-1) * (1 if dx == dy else -1)
        valid = ((cell >= 0) & (cell < wh)).all(-1)
        idx = torch.where(valid, cell[..., 1] * width + cell[..., 0] + start, 0)
        maps.scatter_add_(2, idx, torch.where(valid, w * share, 0))
    mask = torch.zeros(Bn, maps.shape[2], dtype=weights.dtype)
    for b in range(Bn):
        if len(sel_idx[b]):
            mask[b] = (maps[b, sel_idx[b]] * (1 + sel_giou[b])[:, None]).mean(0)
    mask = mask / mask.max(-1)[0].clamp(min=1e-2)[:, None]
    m = mask[..., None]
    return F.mse_loss(ft * m, fs * m)


# ------------------------------------------------------------------------- the paths
def path_dkd(gen):
    from mmdet_ksdetr.distill.tprd.decoupled_kd_loss import decoupled_kd_loss
    zs = (torch.randn(L, B, Q, C, generator=gen) * 3).requires_grad_()
    zt = torch.randn(L, B, Q, C, generator=gen) * 3
    labels = torch.full((L, B, Q), -1, dtype=torch.long)
    for idx in range(L * B):
        rows = torch.randperm(Q, generator=gen)[:15]
        labels.view(-1, Q)[idx, rows] = torch.randint(0, C, (15, ), generator=gen)

    def ours():
        return sum(decoupled_kd_loss(zs[l], zt[l], labels[l]).sum() for l in range(L))

    def release():
        return sum(release_dkd(zs[l], zt[l], labels[l]).sum() for l in range(L))

    return ours, release, [zs]


def path_gt_mask(gen):
    from mmdet_ksdetr.models.ks_detr.ks_gt_mask import gt_foreground_token_mask
    boxes = [_boxes(gen) for _ in range(B)]
    samples = [types.SimpleNamespace(batch_input_shape=IMG) for _ in range(B)]
    return (lambda: gt_foreground_token_mask(samples, LEVELS, boxes=boxes),
            lambda: release_gt_mask(boxes, IMG, LEVELS), None)


def path_triple_attn(gen):
    from mmdet_ksdetr.models.ks_detr.ks_triple_attention import KSMultiheadTripleAttention
    torch.manual_seed(0)
    m = KSMultiheadTripleAttention(256, 8, mode='triple', batch_first=True).train()
    N = 25 * 42
    x = torch.randn(B, N, 256, generator=gen).requires_grad_()
    x_t = torch.randn(B, N, 256, generator=gen).requires_grad_()
    pos = torch.randn(B, N, 256, generator=gen)
    kpm = torch.zeros(B, N, dtype=torch.bool)
    kpm[1, -42 * 3:] = True  # second image padded at the bottom
    return (lambda: m(x, query_pos=pos, key_padding_mask=kpm, teacher_query=x_t),
            lambda: release_triple_attn(m, x, x_t, pos, kpm), [x, x_t])


def path_hungarian_kd(gen):
    from mmdet_ksdetr.distill.core.distill_matcher import DistillHungarianMatcher
    from mmdet_ksdetr.distill.core.hungarian_logit_kd_loss import HungarianLogitKDLoss
    s_logits = (torch.randn(L, B, Q, C, generator=gen) * 2).requires_grad_()
    s_boxes = torch.rand(L, B, Q, 4, generator=gen).mul(0.5).add(0.25).requires_grad_()
    t_probs = torch.rand(L, B, Q, C, generator=gen) ** 4
    t_boxes = torch.rand(L, B, Q, 4, generator=gen).mul(0.5).add(0.25)
    factors = torch.tensor([[1333.0, 800.0, 1333.0, 800.0]]).repeat(B, 1)
    matcher, loss = DistillHungarianMatcher(1, 5, 2), HungarianLogitKDLoss()

    def ours():
        s_idx, t_idx = matcher.match(s_logits.detach(), s_boxes.detach(), t_probs, t_boxes,
                                     factors.expand(L, -1, -1))
        return sum(sum(loss(s_logits[l], s_boxes[l], t_probs[l], t_boxes[l], s_idx[l],
                            t_idx[l], factors).values()) for l in range(L))

    return ours, lambda: release_hungarian_kd(s_logits, s_boxes, t_probs, t_boxes,
                                              factors), [s_logits, s_boxes]


def path_qskd(gen, levels=LEVELS, layers=L, queries=Q, n_selected=100, dims=256,
              dtype=torch.float32):
    from mmdet_ksdetr.distill.qskd.qskd_feature_loss import AttnGuidedFeatureLoss
    H, Lv, P = 8, len(levels), 4
    shapes = torch.tensor(levels)
    S = int((shapes[:, 0] * shapes[:, 1]).sum())
    fs = torch.randn(B, S, dims, generator=gen, dtype=dtype).requires_grad_()
    ft = torch.randn(B, S, dims, generator=gen, dtype=dtype)
    weights = torch.randn(layers, B, queries, H, Lv * P, generator=gen, dtype=dtype).softmax(-1)
    weights = weights.view(layers, B, queries, H, Lv, P)
    # sampling points around the image, a few outside it
    locations = torch.rand(layers, B, queries, H, Lv, P, 2, generator=gen, dtype=dtype)
    locations = locations * 1.1 - 0.05
    sel_idx = [[torch.randperm(queries, generator=gen)[:n_selected] for _ in range(B)]
               for _ in range(layers)]
    sel_giou = [[torch.rand(n_selected, generator=gen, dtype=dtype) * 0.95 + 0.01
                 for _ in range(B)] for _ in range(layers)]
    qw = torch.zeros(layers, B, queries, dtype=dtype)
    for l in range(layers):
        for i in range(B):
            qw[l, i, sel_idx[l][i]] = 1 + sel_giou[l][i]
    loss = AttnGuidedFeatureLoss(loss_weight=1.0)

    def ours():
        return sum(loss(fs, ft, weights[l], locations[l], shapes, qw[l], qw[l] > 0)
                   for l in range(layers))

    def release():
        return sum(release_qskd_feature_loss(fs, ft, weights[l], locations[l], shapes,
                                             sel_idx[l], sel_giou[l]) for l in range(layers))

    return ours, release, [fs]


def _outputs(out):
    return [t.detach() for t in (out if isinstance(out, (list, tuple)) else [out])]


def _max_diff(fn_a, fn_b, leaves):
    """Largest absolute difference of the outputs (and of the gradients of their sum)."""
    res = []
    for fn in (fn_a, fn_b):
        for t in leaves or []:
            t.grad = None
        out = fn()
        grads = []
        if leaves:
            sum(o.sum() for o in (out if isinstance(out, (list, tuple)) else [out])).backward()
            grads = [t.grad.clone() for t in leaves]
        res.append(_outputs(out) + grads)
    return max(float((a.float() - b.float()).abs().max()) for a, b in zip(*res))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--paths', nargs='+', choices=PATHS, default=list(PATHS))
    parser.add_argument('--runs', type=int, default=9)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--release', action='store_true',
                        help='also time a transcription of the release formula (ratio)')
    args = parser.parse_args(argv)
    if args.runs < 1 or args.threads < 1:
        parser.error('--runs and --threads must be >= 1')
    torch.set_num_threads(args.threads)
    print(f'batch {B}, {L} layers, {Q} queries, {C} classes, {IMG[0]}x{IMG[1]} input, '
          f'{args.threads} thread(s), process CPU time, median of {args.runs} (ms)')
    head = f'{"path":14s} {"ours fwd":>9s} {"ours f+b":>9s}'
    if args.release:
        head += f' {"rel fwd":>9s} {"rel f+b":>9s} {"ratio fwd":>9s} {"ratio f+b":>9s}' \
                f' {"max diff":>9s}'
    print(head)
    for name in args.paths:
        ours, release, leaves = globals()['path_' + name](torch.Generator().manual_seed(0))
        impls = dict(ours=ours, release=release) if args.release else dict(ours=ours)
        fns = {}
        for impl, fn in impls.items():
            fns[(impl, 'fwd')] = lambda fn=fn: torch.no_grad()(fn)()

            def fwd_bwd(fn=fn):
                out = fn()
                if leaves:
                    sum(o.sum() for o in (out if isinstance(out, (list, tuple)) else [out])
                        ).backward()
            if leaves:
                fns[(impl, 'f+b')] = fwd_bwd
        t = {k: v * 1e3 for k, v in interleaved_medians(fns, args.runs).items()}
        fb = (lambda impl: t.get((impl, 'f+b'), float('nan')))
        line = f'{name:14s} {t[("ours", "fwd")]:9.2f} {fb("ours"):9.2f}'
        if args.release:
            diff = _max_diff(ours, release, leaves)
            line += (f' {t[("release", "fwd")]:9.2f} {fb("release"):9.2f}'
                     f' {t[("release", "fwd")] / t[("ours", "fwd")]:9.2f}'
                     f' {fb("release") / fb("ours"):9.2f} {diff:9.2g}')
        print(line, flush=True)


if __name__ == '__main__':
    main()
