"""The fast forms of the training hot paths give the outputs of straightforward references
written here (DKD, GT token mask, triple attention, distillation matching cost), and the QSKD
feature loss that of hot_paths.py's transcription of the release."""
import math
import os.path as osp
import sys

import pytest
import torch
import torch.nn.functional as F
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy, bbox_overlaps
from toy_helpers import ROOT

from mmdet_ksdetr.distill.core import distill_matcher as dm
from mmdet_ksdetr.distill.tprd.decoupled_kd_loss import decoupled_kd_loss
from mmdet_ksdetr.models.ks_detr.ks_gt_mask import level_masks, rasterize_boxes
from mmdet_ksdetr.models.ks_detr.ks_triple_attention import KSMultiheadTripleAttention

sys.path.insert(0, osp.join(ROOT, 'tools', 'analysis_tools'))
import hot_paths  # noqa: E402


def _ref_dkd(zs, zt, labels, T, alpha, beta):
    """KL everywhere; on positive rows alpha * TCKD + beta * NCKD from explicit probabilities."""
    zs, zt = zs.reshape(-1, zs.shape[-1]) / T, zt.reshape(-1, zt.shape[-1]).detach() / T
    ps, pt = zs.softmax(-1), zt.softmax(-1)
    out = (pt * (pt.log() - ps.log())).sum(-1)
    rows = []
    for r, c in enumerate(labels.reshape(-1).tolist()):
        if c < 0:
            rows.append(out[r])
            continue
        other = torch.ones(zs.shape[-1], dtype=torch.bool)
        other[c] = False
        bs = torch.stack([ps[r, c], 1 - ps[r, c]])
        bt = torch.stack([pt[r, c], 1 - pt[r, c]])
        tckd = (bt * (bt.log() - bs.log())).sum()
        ns, nt = zs[r, other].softmax(-1), zt[r, other].softmax(-1)
        nckd = (nt * (nt.log() - ns.log())).sum()
        rows.append(alpha * tckd + beta * nckd)
    return torch.stack(rows).view(labels.shape) * T * T


@pytest.mark.parametrize('T,alpha,beta', [(1.0, 1.0, 1.0), (2.0, 0.5, 3.0)])
def test_dkd_positive_rows_match_reference(T, alpha, beta):
    g = torch.Generator().manual_seed(0)
    zs = torch.randn(2, 24, 9, generator=g, dtype=torch.float64).mul(2).requires_grad_()
    zt = torch.randn(2, 24, 9, generator=g, dtype=torch.float64) * 2
    labels = torch.full((2, 24), -1)
    labels[0, [1, 5, 7]] = torch.tensor([0, 8, 3])
    labels[1, 20] = 4
    got = decoupled_kd_loss(zs, zt, labels, T, alpha, beta)
    (g_got, ) = torch.autograd.grad(got.sum(), zs)
    zs64 = zs.detach().double().requires_grad_()
    ref = _ref_dkd(zs64, zt.double(), labels, T, alpha, beta)
    (g_ref, ) = torch.autograd.grad(ref.sum(), zs64)
    torch.testing.assert_close(got.double(), ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g_got.double(), g_ref, rtol=1e-4, atol=1e-6)


def test_dkd_finite_with_minus_inf_teacher_logit():
    zs = torch.randn(4, 5, generator=torch.Generator().manual_seed(1)).requires_grad_()
    zt = zs.detach().clone()
    zt[:, 2] = float('-inf')
    loss = decoupled_kd_loss(zs, zt, torch.tensor([-1, 0, -1, 4]))
    loss.sum().backward()
    assert torch.isfinite(loss).all() and torch.isfinite(zs.grad).all()


@pytest.mark.parametrize('seed', range(4))
def test_level_masks_equal_resized_canvas(seed):
    g = torch.Generator().manual_seed(seed)
    H, W = [int(v) for v in torch.randint(40, 140, (2, ), generator=g)]
    boxes = []
    for n in (0, 3, 6):
        xy = torch.rand(n, 2, generator=g) * torch.tensor([W, H]) * 0.9
        wh = torch.rand(n, 2, generator=g) * torch.tensor([W, H]) * 0.4
        boxes.append(torch.cat([xy, xy + wh], 1))
    shapes = [(math.ceil(H / s), math.ceil(W / s)) for s in (8, 16, 32, 64)]
    shapes += [(H, W), (1, 1), (int(torch.randint(1, H, ())), int(torch.randint(1, W, ())))]
    canvas = rasterize_boxes(boxes, (H, W))[:, None].float()
    for (h, w), got in zip(shapes, level_masks(boxes, (H, W), shapes)):
        ref = F.interpolate(canvas, size=(h, w), mode='bilinear', align_corners=True)[:, 0] > 0
        assert torch.equal(got, ref), (H, W, h, w)


def _ref_streams(m, x, x_t, pos, kpm, attn_mask):
    """Logits scaled after the product, mask added in a separate pass, one product per
    stream: student, A^t V, A V^t."""
    B, N, E = x.shape
    h, d = m.num_heads, E // m.num_heads
    w, b, tw, tb = (m.attn.in_proj_weight, m.attn.in_proj_bias, m.teacher_in_proj_weight,
                    m.teacher_in_proj_bias)

    def heads(t):
        return t.view(B, N, h, d).transpose(1, 2)

    mask = torch.zeros(B, 1, 1, N).masked_fill(kpm[:, None, None], float('-inf'))
    mask = mask + torch.zeros(N, N).masked_fill(attn_mask, float('-inf'))

    def amap(q, k):
        return ((q @ k.transpose(-1, -2)) / math.sqrt(d) + mask).softmax(-1)

    q, k, v = (heads(F.linear(x + p, w[i * E:(i + 1) * E], b[i * E:(i + 1) * E]))
               for i, p in enumerate((pos, pos, 0)))
    qt, kt, vt = (heads(F.linear(x_t + p, tw[i * E:(i + 1) * E], tb[i * E:(i + 1) * E]))
                  for i, p in enumerate((pos, pos, 0)))
    a, at = amap(q, k), amap(qt, kt)
    return [x + m.attn.out_proj((s @ val).transpose(1, 2).reshape(B, N, E))
            for s, val in ((a, v), (at, v), (a, vt))]


def test_triple_attention_matches_reference():
    torch.manual_seed(0)
    m = KSMultiheadTripleAttention(16, 2, mode='triple', batch_first=True).train()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 12, 16, generator=g).requires_grad_()
    x_t = torch.randn(2, 12, 16, generator=g).requires_grad_()
    pos = torch.randn(2, 12, 16, generator=g)
    kpm = torch.zeros(2, 12, dtype=torch.bool)
    kpm[1, -3:] = True
    attn_mask = torch.zeros(12, 12, dtype=torch.bool)
    attn_mask[0, 5] = True
    got = m(x, query_pos=pos, key_padding_mask=kpm, attn_mask=attn_mask, teacher_query=x_t)
    ref = _ref_streams(m, x, x_t, pos, kpm, attn_mask)
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    w = torch.randn(3, 2, 12, 16, generator=g)
    grads = [torch.autograd.grad(sum((o * w[i]).sum() for i, o in enumerate(out)),
                                 [x, x_t, m.attn.in_proj_weight, m.teacher_in_proj_weight])
             for out in (got, ref)]
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_pairwise_giou_equals_mmdet():
    g = torch.Generator().manual_seed(0)
    a = bbox_cxcywh_to_xyxy(torch.rand(3, 7, 4, generator=g)) * 100
    b = bbox_cxcywh_to_xyxy(torch.rand(3, 5, 4, generator=g)) * 100
    b[0, 0] = a[0, 0]  # identical boxes
    b[1, 1] = torch.tensor([500.0, 500.0, 500.0, 500.0])  # degenerate, disjoint
    torch.testing.assert_close(dm.pairwise_giou(a, b), bbox_overlaps(a, b, mode='giou'),
                               rtol=1e-5, atol=1e-6)


def test_matcher_cost_chunks_equal_one_block(monkeypatch):
    g = torch.Generator().manual_seed(0)
    L, B, Ns, Nt, C = 3, 2, 6, 5, 4
    args = (torch.randn(L, B, Ns, C, generator=g), torch.rand(L, B, Ns, 4, generator=g),
            torch.rand(L, B, Nt, C, generator=g), torch.rand(L, B, Nt, 4, generator=g),
            torch.tensor([[64.0, 48, 64, 48], [32, 40, 32, 40]]).expand(L, -1, -1))
    matcher = dm.DistillHungarianMatcher(1, 5, 2)
    monkeypatch.setattr(dm, 'CPU_CHUNK_ELEMENTS', Ns * Nt * 2)  # chunks of 2 matrices
    chunked = matcher.cost(*args)
    s_xyxy = bbox_cxcywh_to_xyxy(args[1]) * args[4][..., None, :]
    t_xyxy = bbox_cxcywh_to_xyxy(args[3]) * args[4][..., None, :]
    ref = (F.softplus(args[0]).sum(-1, keepdim=True) - args[0] @ args[2].transpose(-1, -2) +
           5 * torch.cdist(args[1], args[3], p=1) -
           2 * bbox_overlaps(s_xyxy, t_xyxy, mode='giou'))
    torch.testing.assert_close(chunked, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('n_selected', [7, 0])
@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
def test_qskd_feature_loss_equals_release_transcription(dtype, n_selected):
    """hot_paths.py's plain-torch form of the TPRD release's QSKD feature loss (one dense map per
    query, mean over the selected ones, peak normalisation, MSE of the masked memories) gives
    our loss and gradient (two layers, three levels, points outside the map; no selected query:
    zero). The masks are float32 in both dtypes (the splat accumulates in float32)."""
    ours, release, (fs, ) = hot_paths.path_qskd(
        torch.Generator().manual_seed(0), levels=[(6, 9), (3, 5), (2, 3)], layers=2, queries=20,
        n_selected=n_selected, dims=8, dtype=dtype)
    got = ours()
    (g_got, ) = torch.autograd.grad(got, fs)
    ref = release()
    (g_ref, ) = torch.autograd.grad(ref, fs)
    assert got.dtype == ref.dtype == dtype and (float(ref.detach()) > 0.1) == (n_selected > 0)
    torch.testing.assert_close(got, ref, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(g_got, g_ref, rtol=1e-6, atol=1e-9)
