"""Every toy config's loss dict and parameter gradients on a fixed batch equal the values
recorded in ``tests/data/equivalence/reference.json`` (see ``recorder.py`` there), to float32
round-off: refactorings of the models and distillers must not change what they compute."""
import json
import os.path as osp
import sys

import pytest

HERE = osp.dirname(osp.abspath(__file__))
sys.path.insert(0, osp.join(HERE, 'data', 'equivalence'))
import recorder  # noqa: E402

with open(recorder.REFERENCE) as f:
    REFERENCE = json.load(f)

RTOL = 2e-4  # relative, on each loss and on each gradient fingerprint


def _close(a, b, scale):
    return abs(a - b) <= RTOL * (abs(b) + scale)


def test_every_toy_config_is_recorded():
    assert sorted(REFERENCE) == recorder.toy_configs(), (
        'a toy config was added, removed or moved: re-record with '
        '`python tests/data/equivalence/recorder.py` if its behaviour is meant to be new')


@pytest.mark.parametrize('rel_cfg', sorted(REFERENCE))
def test_loss_and_grads_equal_recorded(rel_cfg, toy_data_root):
    ref = REFERENCE[rel_cfg]
    got = recorder.record_one(rel_cfg, toy_data_root)
    assert set(got['losses']) == set(ref['losses']), \
        sorted(set(got['losses']) ^ set(ref['losses']))
    loss_scale = max(abs(v) for v in ref['losses'].values()) * 1e-3
    bad = [(k, got['losses'][k], v) for k, v in ref['losses'].items()
           if not _close(got['losses'][k], v, loss_scale)]
    assert not bad, bad[:5]
    assert set(got['grads']) == set(ref['grads']), sorted(set(got['grads']) ^ set(ref['grads']))
    # Round-off in a gradient element is relative to the magnitudes that met in the sums that
    # made it, not to its own value: a gradient that is zero in exact arithmetic (a bias before
    # a softmax) comes out as noise of about float32 eps times the model's gradient scale.
    floor = 1e-6 * max(r[1] for r in ref['grads'].values())
    bad = []
    for name, (r_sum, r_norm, r_probe) in ref['grads'].items():
        g_sum, g_norm, g_probe = got['grads'][name]
        # sums and probes cancel: their round-off scales with the gradient's norm
        if not all(_close(g, r, r_norm + floor / RTOL) for g, r in
                   ((g_norm, r_norm), (g_sum, r_sum), (g_probe, r_probe))):
            bad.append((name, got['grads'][name], ref['grads'][name]))
    assert not bad, f'{len(bad)} gradients differ, e.g. {bad[:3]}'
