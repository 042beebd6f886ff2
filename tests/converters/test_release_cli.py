"""tools/model_converters/release_to_mmdet.py on a toy Deformable DETR saved with the mmdet 2.x
key names of the DETRDistill release."""
import os
import os.path as osp
import sys

import torch
from toy_helpers import ROOT, TOY_DETRS, build_toy_model, load_toy_config, run_tool
from toy_helpers import save_toy_mmdet2_release as toy_release

TOY = TOY_DETRS['deformable']
TOY_CFG = osp.join(ROOT, 'configs', TOY)
CLI = osp.join(ROOT, 'tools/model_converters/release_to_mmdet.py')


def cli(capsys, *args):
    """Run the CLI in this process: (exit code, stdout, stderr)."""
    sys.path.insert(0, osp.dirname(CLI))
    try:
        import release_to_mmdet
        code = 0
        try:
            release_to_mmdet.main([str(a) for a in args])
        except SystemExit as e:
            code = e.code
    finally:
        sys.path.remove(osp.dirname(CLI))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_converts_reports_and_writes_a_strict_checkpoint(tmp_path):
    src, model = toy_release(tmp_path / 'release.pth')
    dst = tmp_path / 'mmdet.pth'
    proc = run_tool([sys.executable, CLI, src, str(dst), '--config', TOY_CFG])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'format: detr-distill (Deformable DETR R-18)' in proc.stdout
    assert f'mapped: {len(model.state_dict())} tensors' in proc.stdout
    assert 'dropped as training-only: 0' in proc.stdout
    from mmdet_ksdetr.utils.checkpoint_io import load_weights_strictly
    other = build_toy_model(load_toy_config(TOY), seed=1)
    ckpt = load_weights_strictly(other, str(dst))
    assert ckpt['meta']['release_source'] == 'detr-distill'
    for k, v in model.state_dict().items():
        assert torch.equal(other.state_dict()[k], v), k


def test_refuses_dst_that_is_src(tmp_path, capsys, monkeypatch):
    src, _ = toy_release(tmp_path / 'release.pth')
    before = open(src, 'rb').read()
    os.symlink(src, tmp_path / 'link.pth')
    monkeypatch.chdir(tmp_path)
    for dst in (src, tmp_path / 'link.pth', './release.pth'):
        code, _, err = cli(capsys, src, dst, '--config', TOY_CFG)
        assert code == 2 and err.startswith('release_to_mmdet: error: ') and \
            'also an input' in err and err.count('\n') == 1, err
    assert open(src, 'rb').read() == before


def _bad_inputs(tmp_path):
    src, model = toy_release(tmp_path / 'release.pth')
    mmdet3 = tmp_path / 'mmdet3.pth'
    torch.save(dict(meta={}, state_dict=model.state_dict()), str(mmdet3))
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(open(src, 'rb').read()[:5000])
    hostile = tmp_path / 'hostile.pth'

    class Evil:
        def __reduce__(self):
            return (os.system, ('touch ' + str(tmp_path / 'pwned'), ))

    torch.save(dict(state_dict={'x': torch.zeros(1)}, evil=Evil()), str(hostile))
    classes = tmp_path / 'classes5.py'
    classes.write_text(f'_base_ = "{TOY_CFG}"\nmodel = dict(bbox_head=dict(num_classes=5))\n')
    dino = osp.join(ROOT, 'configs', TOY_DETRS['dino'])
    return dict(unknown=(mmdet3, TOY_CFG, 'not a known release checkpoint'),
                classes=(src, classes, 'predicts 3 classes'),
                architecture=(src, dino, 'config builds a DINO'),
                truncated=(truncated, TOY_CFG, 'not a PyTorch checkpoint'),
                hostile=(hostile, TOY_CFG, 'refused: the file would run code'))


def test_errors_are_one_line_exit_2_nothing_written(tmp_path, capsys):
    for name, (src, cfg, words) in _bad_inputs(tmp_path).items():
        dst = tmp_path / f'{name}_out.pth'
        code, _, err = cli(capsys, src, dst, '--config', cfg)
        assert code == 2, (name, err)
        assert err.startswith('release_to_mmdet: error: ') and err.count('\n') == 1, (name, err)
        assert words in err, (name, err)
        assert not dst.exists(), name
        assert not [p for p in os.listdir(tmp_path) if p.endswith('.tmp')], name
    assert not (tmp_path / 'pwned').exists()


def test_source_must_match(tmp_path, capsys, monkeypatch):
    """--source names a registered format (here a fake one): a checkpoint of another format
    stops in one line."""
    from mmdet_ksdetr.converters.release import ReleaseFormat, api
    monkeypatch.setitem(api._FORMATS, 'fake-cli', ReleaseFormat(
        name='fake-cli', detect=lambda state: 'fake.marker' in state, convert=None))
    src, _ = toy_release(tmp_path / 'release.pth')
    code, _, err = cli(capsys, src, tmp_path / 'out.pth', '--config', TOY_CFG,
                       '--source', 'fake-cli')
    assert code == 2 and 'expected a fake-cli release checkpoint, found detr-distill' in err
    assert not (tmp_path / 'out.pth').exists()
