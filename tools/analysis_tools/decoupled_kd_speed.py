"""Speed of TPRD's decoupled class distillation loss against splitting every pair.

    python tools/analysis_tools/decoupled_kd_speed.py [--layers 6] [--images 2] \
        [--queries 300] [--classes 80] [--pos-per-image 7] [--runs 50] [--warmup 5]

On one CPU thread, times ``mmdet_ksdetr``'s ``decoupled_kd_loss`` (plain KL for every pair,
the target / non-target split only on the positive rows) and :func:`all_pairs_decoupled_kd`
(the straightforward form: the split computed for every (query, class) pair, then
``torch.where`` keeps it on the positive rows), on the same random logits: (layers x images x
queries, classes) student / teacher logits, ``pos-per-image`` random positive queries per layer
and image with random labels. Reports the median forward and forward + backward (of the sum)
milliseconds over ``runs`` interleaved runs, and checks that both give the same losses and
student gradients.
"""
import argparse
import time

import torch
import torch.nn.functional as F


def all_pairs_decoupled_kd(zs, zt, pos_labels, temperature=1.0, alpha=1.0, beta=1.0):
    """Reference: TCKD + NCKD computed for every pair, selected by ``torch.where`` on the
    positive pairs (``pos_labels >= 0``), plain KL elsewhere; ``[..., C]`` -> ``[...]``."""
    zs = zs.float() / temperature
    zt = zt.detach().float() / temperature
    ls, lt = F.log_softmax(zs, -1), F.log_softmax(zt, -1)

    def kl(log_p, log_q):
        p = log_p.exp()
        return torch.where(p > 0, p * (log_p - log_q), torch.zeros_like(p)).sum(-1)

    pos = pos_labels >= 0
    c = pos_labels.clamp(min=0).unsqueeze(-1)
    target = torch.zeros_like(zs, dtype=torch.bool).scatter_(-1, c, True)
    low = torch.finfo(torch.float32).min
    zs_nt, zt_nt = zs.masked_fill(target, low), zt.masked_fill(target, low)
    ls_nc = torch.logsumexp(zs_nt, -1, keepdim=True) - torch.logsumexp(zs, -1, keepdim=True)
    lt_nc = torch.logsumexp(zt_nt, -1, keepdim=True) - torch.logsumexp(zt, -1, keepdim=True)
    tckd = kl(torch.cat([lt.gather(-1, c), lt_nc], -1), torch.cat([ls.gather(-1, c), ls_nc], -1))
    lt_n, ls_n = F.log_softmax(zt_nt, -1), F.log_softmax(zs_nt, -1)
    nckd = torch.where(target, torch.zeros_like(lt_n), lt_n.exp() * (lt_n - ls_n)).sum(-1)
    return torch.where(pos, alpha * tckd + beta * nckd, kl(lt, ls)) * temperature**2


def make_inputs(layers, images, queries, classes, pos_per_image, seed=0):
    """Student logits (requires grad), teacher logits and positive labels (-1 = negative)."""
    if not 0 <= pos_per_image <= queries:
        raise ValueError(f'--pos-per-image must be in [0, {queries}], got {pos_per_image}')
    g = torch.Generator().manual_seed(seed)
    shape = (layers, images, queries)
    zs = (torch.randn(*shape, classes, generator=g) * 3).requires_grad_()
    zt = torch.randn(*shape, classes, generator=g) * 3
    labels = torch.full(shape, -1, dtype=torch.long)
    for idx in range(layers * images):
        rows = torch.randperm(queries, generator=g)[:pos_per_image]
        labels.view(-1, queries)[idx, rows] = torch.randint(0, classes, (pos_per_image, ),
                                                            generator=g)
    return zs, zt, labels


def main(argv=None):
    """Parse the arguments, check equality, time both implementations and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    for name, default in [('layers', 6), ('images', 2), ('queries', 300), ('classes', 80),
                          ('pos-per-image', 7), ('runs', 50), ('warmup', 5)]:
        parser.add_argument(f'--{name}', type=int, default=default)
    args = parser.parse_args(argv)
    if args.runs < 1 or min(args.layers, args.images, args.queries, args.classes) < 1:
        parser.error('--runs, --layers, --images, --queries and --classes must be >= 1')
    if args.classes < 2:
        parser.error('--classes must be >= 2 (decoupled KD has a non-target part)')
    torch.set_num_threads(1)
    from mmdet_ksdetr.distill.tprd.decoupled_kd_loss import decoupled_kd_loss
    zs, zt, labels = make_inputs(args.layers, args.images, args.queries, args.classes,
                                 args.pos_per_image)
    impls = {'positive rows (mmdet_ksdetr)': decoupled_kd_loss,
             'all pairs + torch.where': all_pairs_decoupled_kd}
    outs = {}
    for name, fn in impls.items():
        zs.grad = None
        loss = fn(zs, zt, labels)
        loss.sum().backward()
        outs[name] = (loss.detach(), zs.grad.clone())
    (l_new, g_new), (l_ref, g_ref) = outs.values()
    print(f'max |loss diff| {float((l_new - l_ref).abs().max()):.3g}, '
          f'max |grad diff| {float((g_new - g_ref).abs().max()):.3g}')

    def fwd(fn):
        with torch.no_grad():
            fn(zs, zt, labels)

    def fwd_bwd(fn):
        zs.grad = None
        fn(zs, zt, labels).sum().backward()

    from mmdet_ksdetr.utils.benchmark import interleaved_medians
    jobs = {}
    for name, fn in impls.items():  # interleaved: both see the same machine state
        jobs[(name, 'fwd')] = lambda fn=fn: fwd(fn)
        jobs[(name, 'fwd+bwd')] = lambda fn=fn: fwd_bwd(fn)
    ms = {k: v * 1e3 for k, v in interleaved_medians(jobs, args.runs, args.warmup,
                                                     clock=time.perf_counter).items()}
    print(f'{args.layers} layers x {args.images} images x {args.queries} queries x '
          f'{args.classes} classes, {args.pos_per_image} positives per image and layer, '
          f'1 thread, median of {args.runs} runs (ms)')
    print(f'{"implementation":32s} {"forward":>9s} {"fwd+bwd":>9s}')
    for name in impls:
        print(f'{name:32s} {ms[(name, "fwd")]:9.2f} {ms[(name, "fwd+bwd")]:9.2f}')


if __name__ == '__main__':
    main()
