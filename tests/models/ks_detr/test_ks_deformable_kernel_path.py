"""The CUDA branch of the KS deformable triple attention, run on CPU.

``streams_kernel_call`` is the code the module runs on a GPU: it stacks the streams and calls
mmcv's compiled ``MultiScaleDeformableAttnFunction``. Here the compiled kernel is replaced by
``multi_scale_deformable_attn_pytorch`` (what the kernel computes, mmcv's own reference) behind
a stand-in that also checks the kernel's preconditions (contiguous inputs, long shapes,
``batch % min(batch, step) == 0``) and casts locations and weights to the value dtype as the
kernel's autograd Function does. Values and gradients must equal the CPU branch
(``_streams_shared_sampling``)."""
import pytest
import torch
from mmcv.ops.multi_scale_deform_attn import multi_scale_deformable_attn_pytorch

from mmdet_ksdetr.models.ks_detr.ks_deformable_triple_attention import (
    KSMultiScaleDeformableTripleAttention, streams_kernel_call)

HEADS, D = 2, 4
SHAPES = torch.tensor([[5, 4], [3, 2], [1, 1]])
LEVEL_START = torch.tensor([0, 20, 26])
N = 27


def reference_kernel(value, spatial_shapes, level_start_index, locations, weights, step):
    """``MultiScaleDeformableAttnFunction.apply`` with the pure-torch reference inside."""
    batch = value.shape[0]
    assert isinstance(step, int) and batch % min(batch, step) == 0, (batch, step)
    for t in (value, spatial_shapes, level_start_index, locations, weights):
        assert t.is_contiguous() and t.device == value.device
    assert spatial_shapes.dtype == level_start_index.dtype == torch.long
    locations, weights = locations.type_as(value), weights.type_as(value)  # as the Function
    return multi_scale_deformable_attn_pytorch(value, spatial_shapes, locations, weights)


def _streams(mode, batch, dtype=torch.float32):
    g = torch.Generator().manual_seed(5)

    def leaf(*shape, scale=1.0, shift=0.0):
        return (torch.rand(*shape, generator=g) * scale + shift).to(dtype).requires_grad_()

    v, v_t = leaf(batch, N, HEADS, D, shift=-0.5), leaf(batch, N, HEADS, D, shift=-0.5)
    loc = leaf(batch, N, HEADS, 3, 2, 2, scale=1.2, shift=-0.1)
    a, a_t = leaf(batch, N, HEADS, 3, 2), leaf(batch, N, HEADS, 3, 2)
    values, weights = {'triple': ([v, v, v_t], [a, a_t, a]),
                       'dual_share_v': ([v, v], [a, a_t]),
                       'dual_share_a': ([v, v_t], [a, a])}[mode]
    return values, weights, loc, [v, v_t, loc, a, a_t]


def _module(mode, im2col_step=64):
    return KSMultiScaleDeformableTripleAttention(
        embed_dims=HEADS * D, num_heads=HEADS, num_levels=3, num_points=2, batch_first=True,
        mode=mode, im2col_step=im2col_step)


@pytest.mark.parametrize('mode', ['triple', 'dual_share_v', 'dual_share_a'])
@pytest.mark.parametrize('batch,im2col_step', [(2, 64), (4, 2)])
def test_kernel_branch_equals_cpu_branch(mode, batch, im2col_step):
    m = _module(mode, im2col_step)
    values, weights, loc, leaves = _streams(mode, batch)
    cpu = m._streams_shared_sampling(values, weights, loc, SHAPES)
    kern = streams_kernel_call(values, weights, loc, SHAPES, LEVEL_START, m.im2col_step,
                               kernel=reference_kernel)
    assert kern.shape == cpu.shape == (len(values) * batch, N, HEADS * D)
    torch.testing.assert_close(kern, cpu, atol=1e-6, rtol=1e-5)
    w = torch.randn(cpu.shape, generator=torch.Generator().manual_seed(9))
    g_cpu = torch.autograd.grad((cpu * w).sum(), leaves, allow_unused=True)
    g_kern = torch.autograd.grad((kern * w).sum(), leaves, allow_unused=True)
    for name, x, y in zip(('v', 'v_t', 'loc', 'a', 'a_t'), g_cpu, g_kern):
        assert (x is None) == (y is None), name
        if x is not None:
            torch.testing.assert_close(y, x, atol=1e-5, rtol=1e-4, msg=name)


def test_kernel_branch_step_is_what_the_kernel_accepts():
    """B = 3 with im2col_step 2: mmcv's own call (step 2 for 3 images) is rejected by the
    kernel, and so is ours (S * 2 for 3 * S images); B = 4 passes (the stand-in checks)."""
    values, weights, loc, _ = _streams('triple', 3)
    with pytest.raises(AssertionError):
        streams_kernel_call(values, weights, loc, SHAPES, LEVEL_START, 2,
                            kernel=reference_kernel)
    values, weights, loc, _ = _streams('triple', 4)
    streams_kernel_call(values, weights, loc, SHAPES, LEVEL_START, 2, kernel=reference_kernel)


def test_kernel_branch_under_amp_like_dtypes():
    """Under --amp the values are half (Linear under autocast) while locations and softmax
    weights are float32: the kernel path follows the value dtype, like mmcv's kernel. bfloat16
    stands in for float16 here (the same casts; CPU reference kernels in both)."""
    values, weights, loc, _ = _streams('triple', 2)
    half_values = [x.detach().to(torch.bfloat16) for x in values]
    out = streams_kernel_call(half_values, weights, loc, SHAPES, LEVEL_START, 64,
                              kernel=reference_kernel)
    assert out.dtype == torch.bfloat16
    full = streams_kernel_call([x.float() for x in half_values], weights, loc, SHAPES,
                               LEVEL_START, 64, kernel=reference_kernel)
    torch.testing.assert_close(out.float(), full, atol=0.05, rtol=0.05)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_cpu_branch_keeps_the_input_dtype(dtype):
    m = _module('triple').to(dtype)
    values, weights, loc, _ = _streams('triple', 2, dtype)
    out = m._streams_shared_sampling(values, weights, loc, SHAPES)
    assert out.dtype == dtype
    x = torch.randn(2, N, HEADS * D).to(dtype)
    ref = torch.rand(2, N, 3, 2).to(dtype)
    streams = m(x, query_pos=x, reference_points=ref, spatial_shapes=SHAPES,
                level_start_index=LEVEL_START, teacher_query=x * 0.5)
    assert [s.dtype for s in streams] == [dtype] * 3
