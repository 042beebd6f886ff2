"""Loss dict and parameter-gradient fingerprints of every toy KS, DAC, distiller and baseline
config on one fixed batch, dropout off: the numbers a refactoring must not change.

Record (writes ``reference.json`` beside this file; run from the repository root):

    python tests/data/equivalence/recorder.py

``tests/test_equivalence_reference.py`` recomputes the same numbers with the code as it is and
compares them with the recorded ones to float32 round-off. Re-record only when a change of
behaviour is intended, and say so in the commit.

Each model is built with seed 0 in float64 (default dtype float64 while it is built and
``init_weights()`` runs as the Runner does, then ``.double()`` for the tensors that an
``init_weights`` assigns as float32 itself), then every parameter is moved by seeded
N(0, 0.02) float64 noise (mmdet zero-inits the last box layer; exact zeros would put L1 terms at
their kink, where round-off flips the sign of the gradient). Float64 from the first draw is what
makes the model the same on every x86-64 CPU: ATen draws float32 ``normal_`` / ``randn`` with
another algorithm under AVX2 than without, so float32 draws differ by one ulp in about half the
parameters between ATEN_CPU_CAPABILITY=default and avx2, while float64 draws agree (to one
ulp of float64 at most). Distillers get a random
teacher (``teacher_ckpt=None``). The batch is the first two training images of the toy set
(``make_toy_coco(seed=0)``) through the train pipeline after ``set_random_seed(0)``, normalised
in float64, and ``torch.manual_seed(1)`` runs right before the loss so that denoising noise and
random distillation queries are the same draw.

The loss and its backward run in float64 (tensors created in the forward default to float64;
module outputs that a module makes float32 on purpose are handed on as float64). In float32 the
reference would not be portable: the toy models have about 10^6 kinks (ReLU inputs, bilinear
sampling at integer pixel positions, L1 at zero) and their float32 values differ by about 1e-7
(relative) between CPU kernels (ATEN_CPU_CAPABILITY, thread counts), so one of them usually
changes side somewhere and moves a gradient by 1e-4 to 1e-3. The same happens in float64 when
the parameters themselves differ by a float32 ulp (a model built in float32 and cast): the two
D3ETR toy configs then moved by about 1e-3 between default and avx2 (Hungarian matching was not
involved: same indices, cost margins >= 4e-3). In float64 most differences shrink to about
1e-15, but not all: mmdet's sine positional encodings and some distillation losses compute in
float32 on purpose, which leaves small differences (D3ETR toy configs, default vs avx2: at most
7e-9 of ``sum(|g|)``, against 6.7e-4 with parameters drawn in float32).

A gradient ``g`` (n elements) is fingerprinted by five numbers: ``sum(g)``, ``sum(|g|)``,
``|g|_2``, ``g . p`` and ``sum(|g * p|)``, with ``p`` a fixed N(0, 1) vector seeded by the
parameter's name. ``sum``, ``|g|_2`` and ``g . p`` catch any change beyond round-off in any
element; ``sum(|g|)`` and ``sum(|g * p|)`` are the magnitudes of what the two signed sums add up,
the scale of their round-off (``tests/test_equivalence_reference.py``).
"""
import copy
import json
import os
import os.path as osp
import sys
import tempfile
import zlib

HERE = osp.dirname(osp.abspath(__file__))
ROOT = osp.dirname(osp.dirname(osp.dirname(HERE)))
REFERENCE = osp.join(HERE, 'reference.json')
TOY = osp.join(ROOT, 'configs', 'toy')
TESTS = osp.join(ROOT, 'tests')


def toy_configs():
    """Every toy config, relative to the repository root, sorted."""
    out = []
    for dirpath, _, files in os.walk(TOY):
        for f in files:
            if f.endswith('.py'):
                out.append(osp.relpath(osp.join(dirpath, f), ROOT))
    return sorted(out)


def _noise_all_parameters(model, seed=7, std=0.02):
    import torch
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * std)


def _fingerprint(name, grad):
    import torch
    g = grad.detach().double().flatten()
    gen = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    probe = torch.randn(g.numel(), generator=gen, dtype=torch.float64)
    return [float(g.sum()), float(g.abs().sum()), float(g.norm()), float(g @ probe),
            float((g * probe).abs().sum())]


def _float32_to_double(value):
    """``value`` with every float32 tensor in it (nested in tuples, lists, dicts) as float64."""
    import torch
    if isinstance(value, torch.Tensor):
        return value.double() if value.dtype == torch.float32 else value
    if isinstance(value, (tuple, list)):
        return type(value)(_float32_to_double(v) for v in value)
    if isinstance(value, dict):
        return type(value)((k, _float32_to_double(v)) for k, v in value.items())
    return value


def build_model(cfg):
    """The model of ``cfg`` as the module docstring says: ``build_toy_model`` (tests/toy_helpers)
    with seed 0 in float64, a random teacher for a distiller, then the noise. ``cfg`` is left
    as it is."""
    import torch
    if TESTS not in sys.path:
        sys.path.insert(0, TESTS)
    from toy_helpers import build_toy_model
    model_cfg = copy.deepcopy(cfg.model)
    if 'teacher_ckpt' in model_cfg:
        model_cfg['teacher_ckpt'] = None
    # float64 from the first draw: ATen's float32 normal_ / randn take another code path with
    # AVX2 than without, so float32 draws differ by 1 ulp in about half the parameters between
    # CPUs (see the module docstring)
    model = build_toy_model(cfg, seed=0, dtype=torch.float64, model=model_cfg)
    _noise_all_parameters(model)
    return model


def record_one(rel_cfg, data_root):
    """``{'losses': {name: value}, 'grads': {param: [sum, l1, norm, probe, probe_l1]}}`` of one
    config, computed in float64 (see the module docstring)."""
    import torch
    from mmengine.config import Config
    sys.path.insert(0, TESTS)
    from toy_helpers import disable_dropout, set_toy_data_root, toy_batch
    cfg = set_toy_data_root(Config.fromfile(osp.join(ROOT, rel_cfg)), data_root)
    model = build_model(cfg)
    disable_dropout(model).train()
    from mmengine.runner import set_random_seed
    set_random_seed(0)  # the train pipeline's random flip draws from python / numpy
    batch = toy_batch(cfg, data_root, 'train', 2)
    data = model.data_preprocessor(batch, True)
    model.double()
    inputs = data['inputs'].double()
    for sample in data['data_samples']:
        sample.gt_instances.bboxes = sample.gt_instances.bboxes.double()
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    # modules that make float32 tensors on purpose (mmdet's sine positional encodings) hand
    # them on as float64
    hook = torch.nn.modules.module.register_module_forward_hook(
        lambda module, args, output: _float32_to_double(output))
    try:
        torch.manual_seed(1)
        losses = model.loss(inputs, data['data_samples'])
        total = sum(v for k, v in losses.items()
                    if 'loss' in k and isinstance(v, torch.Tensor))
        total.backward()
    finally:
        hook.remove()
        torch.set_default_dtype(default_dtype)
    out_losses = {}
    for k, v in losses.items():
        if isinstance(v, torch.Tensor):
            out_losses[k] = float(v.detach().double().sum())
    grads = {n: _fingerprint(n, p.grad) for n, p in model.named_parameters()
             if p.grad is not None}
    return {'losses': out_losses, 'grads': grads}


def make_data_root(tmpdir):
    sys.path.insert(0, osp.join(ROOT, 'tools', 'misc'))
    from make_toy_coco import make_toy_coco
    root = osp.join(tmpdir, 'toy_coco')
    make_toy_coco(root, num_train=16, num_val=8, seed=0)
    return root + '/'


def main():
    import torch
    torch.set_num_threads(1)
    import mmdet_ksdetr  # noqa: F401
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = make_data_root(tmp)
        for rel in toy_configs():
            print('recording', rel, flush=True)
            out[rel] = record_one(rel, root)
    from mmdet_ksdetr.utils.checkpoint_io import atomic_write
    atomic_write(REFERENCE, lambda f: json.dump(out, f, indent=0, sort_keys=True), mode='w')
    print('wrote', REFERENCE)


if __name__ == '__main__':
    main()
