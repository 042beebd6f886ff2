"""tools/pth_transfer.py on KS-DETR and DAC-DETR checkpoints: the output loads STRICTLY into
the stock detector built from the baseline config (for KS: the config the tool names) and
predicts the same boxes as the KS / DAC model on toy images."""
import glob
import os.path as osp
import sys

import pytest
import torch
from mmengine.config import Config
from toy_helpers import (ROOT, assert_same_detections, build_toy_model, load_toy_config,
                         perturb_parameters, predict_both, run_tool, toy_batch)

sys.path.insert(0, osp.join(ROOT, 'tools'))
import pth_transfer  # noqa: E402

KS_CONFIGS = sorted(osp.relpath(p, osp.join(ROOT, 'configs'))
                    for p in glob.glob(osp.join(ROOT, 'configs', 'toy', 'ks_detr', '*.py')))
# the DAC toy configs' baselines, as their header comments give them
DAC_BASELINES = {
    'toy/dac_detr/dac-deformable-detr-refine-twostage_tiny-r18_1xb2-12e_toy.py':
    ('toy/deformable-detr_tiny-r18_1xb2-12e_toy.py',
     {'model.with_box_refine': True, 'model.as_two_stage': True}),
    'toy/dac_detr/dac-dino-cdn-ice-4scale_tiny-r18_1xb2-12e_toy.py':
    ('toy/dino-4scale_tiny-r18_1xb2-12e_toy.py', {}),
}


def _trained_checkpoint(rel_cfg, data_root, path):
    """A checkpoint as mmengine's Runner saves it (meta with the config name and text)."""
    cfg = load_toy_config(rel_cfg, data_root)
    model = perturb_parameters(build_toy_model(cfg), seed=3)  # away from the zero-init box layer
    stem = osp.splitext(osp.basename(rel_cfg))[0]
    meta = dict(experiment_name=f'{stem}_20261130_120000', cfg=cfg.pretty_text, epoch=12,
                dataset_meta=dict(classes=('rectangle', 'ellipse', 'triangle')))
    torch.save(dict(meta=meta, state_dict=model.state_dict(), optimizer={}), path)
    return cfg, model


def _convert(capsys, src, out):
    capsys.readouterr()  # drop the build's log lines
    pth_transfer.main(['--ckpt_path', str(src), '--output_path', str(out)])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[1].startswith('load it with: '), lines
    return lines[0], lines[1][len('load it with: '):]


def _same_predictions(cfg, model, stock, data_root):
    got, want = predict_both(model, stock, toy_batch(cfg, data_root, 'val', 4))
    assert_same_detections(got, want, atol=0)
    assert len(got) == 4 and got[0].pred_instances.bboxes.numel() > 0


@pytest.mark.parametrize('rel_cfg', KS_CONFIGS)
def test_ks_checkpoint_to_stock(rel_cfg, toy_data_root, tmp_path, capsys):
    cfg, model = _trained_checkpoint(rel_cfg, toy_data_root, tmp_path / 'ks.pth')
    head, load_with = _convert(capsys, tmp_path / 'ks.pth', tmp_path / 'stock.pth')
    teacher = {k: v for k, v in model.state_dict().items() if 'teacher_' in k}
    n_params = sum(v.numel() for v in teacher.values()) / 1e6
    assert head == (f'wrote {tmp_path / "stock.pth"}: KS-DETR -> stock detector, '
                    f'{len(model.state_dict()) - len(teacher)} tensors kept, {len(teacher)} KS '
                    f'teacher-only tensors ({n_params:.3f}M parameters, unused at inference) '
                    f'dropped')
    base = osp.basename(rel_cfg)[len('ks-'):]
    assert load_with == osp.join('configs', 'toy', base), load_with  # run from the repo root
    stock_cfg = load_toy_config(osp.relpath(load_with, 'configs'), toy_data_root)
    stock = build_toy_model(stock_cfg)
    assert not type(stock).__name__.startswith('KS')
    ckpt = torch.load(tmp_path / 'stock.pth', map_location='cpu', weights_only=True)
    assert set(ckpt) == {'meta', 'state_dict'} and 'cfg' not in ckpt['meta']
    stock.load_state_dict(ckpt['state_dict'], strict=True)
    _same_predictions(cfg, model, stock, toy_data_root)


@pytest.mark.parametrize('rel_cfg', sorted(DAC_BASELINES))
def test_dac_checkpoint_is_recognised_as_stock(rel_cfg, toy_data_root, tmp_path, capsys):
    cfg, model = _trained_checkpoint(rel_cfg, toy_data_root, tmp_path / 'dac.pth')
    head, load_with = _convert(capsys, tmp_path / 'dac.pth', tmp_path / 'stock.pth')
    assert head == (f'wrote {tmp_path / "stock.pth"}: DAC-DETR checkpoint, already stock (the '
                    f'C-stream adds no parameter): {len(model.state_dict())} tensors copied')
    dac_type = cfg.model.type
    assert load_with.startswith('the same config with ') and \
        f'{dac_type} -> {dac_type[3:]}' in load_with, load_with
    assert load_with.endswith(f'{osp.basename(rel_cfg)}"; its header comment names the '
                              f'baseline)'), load_with
    base_cfg, overrides = DAC_BASELINES[rel_cfg]
    stock = build_toy_model(load_toy_config(base_cfg, toy_data_root, **overrides))
    ckpt = torch.load(tmp_path / 'stock.pth', map_location='cpu', weights_only=True)
    stock.load_state_dict(ckpt['state_dict'], strict=True)
    _same_predictions(cfg, model, stock, toy_data_root)


def test_ks_baseline_rule_for_shipped_configs():
    """Every shipped KS config has its baseline config by the naming rule, or the tool
    prints the rule (the Swin-T one has no baseline config)."""
    from mmdet_ksdetr.converters.stock_conversion import ks_baseline_config
    found = {}
    for path in sorted(glob.glob(osp.join(ROOT, 'configs', 'ks_detr', 'ks-*.py'))):
        found[osp.basename(path)] = ks_baseline_config(path)
    assert found['ks-dab-detr_r50_8xb2-50e_coco.py'].endswith(
        'configs/ks_detr/dab-detr_r50_8xb2-50e_coco.py')
    assert found['ks-dab-detr-dual-share-a_r101_8xb2-50e_coco.py'].endswith(
        'configs/ks_detr/dab-detr_r101_8xb2-50e_coco.py')
    missing = sorted(k for k, v in found.items() if v is None)
    assert missing == ['ks-dab-detr_swin-t-p4-w7_8xb2-50e_coco.py'], missing
    for ks, base in found.items():
        if base:
            model = Config.fromfile(base).model
            assert not model.type.startswith('KS') and 'ks_cfg' not in model, (ks, base)


def test_ks_rule_printed_without_config_name(tmp_path):
    """A KS checkpoint whose meta does not name its config: the tool prints the rule."""
    state = {'encoder.layers.0.self_attn.teacher_in_proj_weight': torch.zeros(6, 2),
             'encoder.layers.0.self_attn.in_proj_weight': torch.zeros(6, 2)}
    torch.save(dict(meta=dict(cfg="model = dict(type='KSDABDETR', bbox_head=dict("
                              "type='KSDABDETRHead'))"), state_dict=state), tmp_path / 'k.pth')
    res = run_tool([sys.executable, 'tools/pth_transfer.py', '--ckpt_path',
                    str(tmp_path / 'k.pth'), '--output_path', str(tmp_path / 'o.pth')])
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == (
        'load it with: the same config with KSDABDETR -> DABDETR, KSDABDETRHead -> '
        'DABDETRHead and model.ks_cfg removed (its training config)')
    ckpt = torch.load(tmp_path / 'o.pth', weights_only=True)
    assert list(ckpt['state_dict']) == ['encoder.layers.0.self_attn.in_proj_weight']
