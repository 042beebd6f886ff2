"""A release checkpoint as downloaded, given as ``teacher_ckpt`` or ``load_from``: recognised,
converted in memory with the model's config (one log line), then loaded strictly."""
import pytest
import torch

from toy_helpers import TOY_DETRS, build_toy_model, load_toy_config
from toy_helpers import save_toy_mmdet2_release as toy_release

TOY = TOY_DETRS['deformable']


@pytest.fixture
def fake_format(monkeypatch):
    """A fake release format: keys ``fake::<mmdet name>``."""
    from mmdet_ksdetr.converters.release import ConversionReport, ReleaseFormat, api

    def convert(state, cfg):
        assert cfg is not None  # the model's config reaches the format
        return ({k[len('fake::'):]: v for k, v in state.items()},
                ConversionReport(source='fake', architecture='toy', mapped=len(state)))

    monkeypatch.setitem(api._FORMATS, 'fake', ReleaseFormat(
        name='fake', detect=lambda s: all(k.startswith('fake::') for k in s), convert=convert))


def fake_release(path, seed=3):
    model = build_toy_model(load_toy_config(TOY), seed=seed)
    torch.save({'model': {f'fake::{k}': v for k, v in model.state_dict().items()}}, str(path))
    return str(path), model


def assert_same_weights(a, b):
    for k, v in b.state_dict().items():
        assert torch.equal(a.state_dict()[k], v), k


@pytest.mark.parametrize('kind', ['detr-distill', 'fake'])
def test_teacher_ckpt_accepts_a_release(kind, tmp_path, fake_format, monkeypatch):
    from mmdet_ksdetr.distill.core.teacher_checkpoint import load_teacher_checkpoint
    messages = []
    monkeypatch.setattr('mmengine.logging.print_log', lambda msg, **kw: messages.append(msg))
    make = toy_release if kind == 'detr-distill' else fake_release
    path, source = make(tmp_path / 'release.pth')
    teacher = build_toy_model(load_toy_config(TOY), seed=7)
    load_teacher_checkpoint(teacher, path)
    assert_same_weights(teacher, source)
    assert [m for m in messages if m.startswith(f'teacher_ckpt: "{path}" is a {kind} release')]


def test_teacher_ckpt_release_of_another_class_count_stops(tmp_path):
    from mmdet_ksdetr.converters.release import ReleaseConversionError
    from mmdet_ksdetr.distill.core.teacher_checkpoint import load_teacher_checkpoint
    path, _ = toy_release(tmp_path / 'release.pth')
    cfg = load_toy_config(TOY)
    cfg.model.bbox_head.num_classes = 5
    teacher = build_toy_model(cfg)
    with pytest.raises(ReleaseConversionError, match='predicts 3 classes'):
        load_teacher_checkpoint(teacher, path)


def _runner(tmp_path, load_from, **cfg_options):
    from mmdet_ksdetr.engine import CrashSafeRunner
    cfg = load_toy_config(TOY, work_dir=str(tmp_path / 'work'), load_from=load_from,
                          **cfg_options)
    return CrashSafeRunner.from_cfg(cfg)


@pytest.mark.parametrize('kind', ['detr-distill', 'fake'])
def test_load_from_accepts_a_release(kind, tmp_path, fake_format):
    make = toy_release if kind == 'detr-distill' else fake_release
    path, source = make(tmp_path / 'release.pth')
    runner = _runner(tmp_path, path)
    messages = []
    runner.logger.info = messages.append
    runner.load_or_resume()
    assert_same_weights(runner.model, source)
    assert [m for m in messages if m.startswith(f'load_from: "{path}" is a {kind} release')]


def test_load_from_release_into_a_smaller_model_stops(tmp_path):
    from mmdet_ksdetr.converters.release import ReleaseConversionError
    path, _ = toy_release(tmp_path / 'release.pth')
    runner = _runner(tmp_path, path, model=dict(decoder=dict(num_layers=1)))
    with pytest.raises(ReleaseConversionError, match='2 decoder layers'):
        runner.load_or_resume()


def test_resume_from_a_release_stops(tmp_path):
    from mmdet_ksdetr.utils.errors import InputError
    path, _ = toy_release(tmp_path / 'release.pth')
    runner = _runner(tmp_path, path, resume=True)
    with pytest.raises(InputError, match='resume needs a checkpoint of this run'):
        runner.load_checkpoint(path)
