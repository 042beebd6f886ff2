"""Every toy config's loss dict and parameter gradients on a fixed batch equal the values
recorded in ``tests/data/equivalence/reference.json`` (see ``recorder.py`` there) to round-off,
on any x86-64 CPU: refactorings of the models and distillers must not change what they compute.

Both sides are computed in float64 (``recorder.py`` says why float32 is not portable: its kinks).
What is left between two CPUs (ATEN_CPU_CAPABILITY, thread counts) is round-off: about 1e-16 of
the magnitudes summed in pure float64 code, about 1e-7 where code casts to float32 itself (some
distillation losses). Every check below is therefore relative to the magnitude of what was
summed, never to a result that may have cancelled:

* a gradient ``g = exact + e`` with ``|e_i| <= rho * m_i`` (``m_i``: the magnitude of element
  ``i``) moves ``sum(g)`` by ``|sum(e)| <= rho * sum(|g|)`` and ``g . p`` by
  ``<= rho * sum(|g * p|)``: ``sum(|g|)`` and ``sum(|g * p|)`` are recorded beside the sums. A
  cancelled sum (a conv gradient of ``0.437`` made of 36864 elements with ``sum(|g|) ~ 20``)
  gets ``rho * 20``, not ``rho * 0.437``;
* ``| |g|_2 - |exact|_2 | <= |e|_2 <= rho * |g|_2``;
* an element that is zero in exact arithmetic (a bias before a softmax) is the round-off of the
  terms that met in it, which are at most the model's gradient scale: every bound gets
  ``FLOOR * max |g|_2`` added.

``RTOL`` is ``rho``: float32 still enters a float64 run (mmdet's sine positional encodings and
some distillation losses compute in float32 on purpose), and the largest difference measured
between ATEN_CPU_CAPABILITY=default and avx2 on a clean path (fgd) was 1.9e-6 of the magnitude
with parameters drawn in float32 (the recorder now draws them in float64: D3ETR, 7e-9):
1e-4 leaves a margin of 50, and stays below a kink changing side (1e-4 to 1e-3 of ``|g|_2``) or
a loss weight off by 0.1%.
"""
import json
import os.path as osp
import sys

import pytest

HERE = osp.dirname(osp.abspath(__file__))
sys.path.insert(0, osp.join(HERE, 'data', 'equivalence'))
import recorder  # noqa: E402

with open(recorder.REFERENCE) as f:
    REFERENCE = json.load(f)

RTOL = 1e-4  # relative to the magnitude of what was summed (see the module docstring)
FLOOR = 1e-6  # of the largest gradient norm: round-off of a gradient zero in exact arithmetic


def test_every_toy_config_is_recorded():
    assert sorted(REFERENCE) == recorder.toy_configs(), (
        'a toy config was added, removed or moved: re-record with '
        '`python tests/data/equivalence/recorder.py` if its behaviour is meant to be new')


def grad_mismatches(got, ref):
    """``[(name, got, ref, why)]`` for each gradient fingerprint of ``got`` (as the recorder's
    ``grads``) that differs from ``ref`` beyond round-off."""
    floor = FLOOR * max(r[2] for r in ref.values())
    bad = []
    for name, (r_sum, r_l1, r_norm, r_probe, r_probe_l1) in ref.items():
        g_sum, g_l1, g_norm, g_probe, g_probe_l1 = got[name]
        checks = (('sum', g_sum, r_sum, r_l1), ('sum|g|', g_l1, r_l1, r_l1),
                  ('norm', g_norm, r_norm, r_norm), ('probe', g_probe, r_probe, r_probe_l1),
                  ('sum|g*p|', g_probe_l1, r_probe_l1, r_probe_l1))
        for what, g, r, magnitude in checks:
            if abs(g - r) > RTOL * (magnitude + floor):
                bad.append((name, what, g, r))
                break
    return bad


@pytest.mark.parametrize('rel_cfg', sorted(REFERENCE))
def test_loss_and_grads_equal_recorded(rel_cfg, toy_data_root):
    ref = REFERENCE[rel_cfg]
    got = recorder.record_one(rel_cfg, toy_data_root)
    assert set(got['losses']) == set(ref['losses']), \
        sorted(set(got['losses']) ^ set(ref['losses']))
    # a loss is a mean of terms of one sign, or (contrastive) of the size of the largest loss
    loss_floor = FLOOR * max(abs(v) for v in ref['losses'].values())
    bad = [(k, got['losses'][k], v) for k, v in ref['losses'].items()
           if abs(got['losses'][k] - v) > RTOL * (abs(v) + loss_floor)]
    assert not bad, f'{len(bad)} losses differ, e.g. {bad[:5]}'
    assert set(got['grads']) == set(ref['grads']), sorted(set(got['grads']) ^ set(ref['grads']))
    bad = grad_mismatches(got['grads'], ref['grads'])
    assert not bad, f'{len(bad)} gradients differ, e.g. {bad[:3]}'


def test_a_change_beyond_round_off_is_caught():
    """The bounds are not so wide that a real change passes: 0.1% more of one gradient, or a
    sum moved by 5e-4 of its magnitude, fails."""
    ref = {'a': [0.437, 20.0, 0.113, -0.058, 1.9], 'b': [1e-15, 1e-14, 1e-15, 0.0, 1e-14]}
    assert grad_mismatches(ref, ref) == []
    assert grad_mismatches({'a': [v * 1.001 for v in ref['a']], 'b': ref['b']}, ref)
    assert grad_mismatches({'a': [0.437 + 1e-2] + ref['a'][1:], 'b': ref['b']}, ref)
    # round-off of the size of the recorded magnitudes passes
    assert grad_mismatches({'a': [0.437 + 1e-8] + ref['a'][1:], 'b': [5e-14] + ref['b'][1:]},
                           ref) == []


_BUILD_IN_CHILD = """
import sys
import torch
sys.path.insert(0, {equivalence!r})
import mmdet_ksdetr  # noqa: F401
import recorder
from mmengine.config import Config
model = recorder.build_model(Config.fromfile({cfg!r}))
torch.save(model.state_dict(), {out!r})
print(torch.backends.cpu.get_cpu_capability())
"""


def test_models_are_the_same_on_every_cpu_kernel(tmp_path):
    """The recorder's model (init + noise) does not depend on ATen's CPU kernels: built under
    another ATEN_CPU_CAPABILITY in a child process, every parameter and buffer equals this
    process's to float64 round-off. (Drawn in float32, about half the parameters differ by a
    float32 ulp between default and AVX2, and the D3ETR references moved by 1e-3.)"""
    import os
    import subprocess

    import torch
    from mmengine.config import Config
    here = torch.backends.cpu.get_cpu_capability()
    other = 'avx2' if here == 'DEFAULT' else 'default'
    rel_cfg = 'configs/toy/deformable-detr_tiny-r18_1xb2-12e_toy.py'  # mmcv's float32 grid init
    cfg = osp.join(recorder.ROOT, rel_cfg)
    out = str(tmp_path / 'state.pth')
    env = dict(os.environ, ATEN_CPU_CAPABILITY=other, OMP_NUM_THREADS='1',
               PYTHONPATH=os.pathsep.join(filter(None, [recorder.ROOT,
                                                        os.environ.get('PYTHONPATH')])))
    code = _BUILD_IN_CHILD.format(equivalence=osp.dirname(recorder.__file__), cfg=cfg, out=out)
    child = subprocess.run([sys.executable, '-c', code], env=env, cwd=recorder.ROOT,
                           capture_output=True, text=True, timeout=600)
    assert child.returncode == 0, child.stderr[-2000:]
    if child.stdout.split()[-1] == here:
        pytest.skip(f'this CPU runs only the {here} kernels')
    theirs = torch.load(out)
    ours = recorder.build_model(Config.fromfile(cfg)).state_dict()
    assert sorted(theirs) == sorted(ours)
    for name, value in ours.items():
        assert value.dtype == theirs[name].dtype, name
        if value.is_floating_point():
            torch.testing.assert_close(theirs[name], value, rtol=0, atol=1e-13, msg=name)
        else:
            assert torch.equal(theirs[name], value), name
