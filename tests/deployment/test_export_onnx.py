"""tools/deployment/export_onnx.py + onnx_demo.py: every DETR family this library trains (and
converted KS / DAC checkpoints) exports to one ONNX file that plain onnxruntime runs on toy
images of different sizes with PyTorch's ``predict`` results; bad input is refused in one line
with nothing written; the demo runs without torch."""
import os
import os.path as osp
import sys

import numpy as np
import pytest
import torch
from toy_helpers import (ROOT, TOY_CLASSES, build_toy_model, load_toy_config, perturb_parameters,
                         run_tool, save_random_checkpoint, toy_batch,
                         write_toy_retinanet_config)

pytest.importorskip('onnxruntime')
pytest.importorskip('onnx')
sys.path.insert(0, osp.join(ROOT, 'tools'))
sys.path.insert(0, osp.join(ROOT, 'tools', 'deployment'))
import export_onnx  # noqa: E402
import onnx_demo  # noqa: E402
import pth_transfer  # noqa: E402

CLASSES = ('rectangle', 'ellipse', 'triangle')
DEFORMABLE = 'toy/deformable-detr_tiny-r18_1xb2-12e_toy.py'
# family: (config the checkpoint is trained with, stock config to export with + overrides)
FAMILIES = {
    'detr': ('toy/detr_tiny-r18_1xb2-12e_toy.py', None),
    'deformable-detr': (DEFORMABLE, None),
    'conditional-detr': ('toy/conditional-detr_tiny-r18_1xb2-12e_toy.py', None),
    'dab-detr': ('toy/dab-detr_tiny-r18_1xb2-12e_toy.py', None),
    'dn-detr': ('toy/dn-detr_tiny-r18_1xb2-12e_toy.py', None),
    'dn-deformable-detr': ('toy/dn-deformable-detr_tiny-r18_1xb2-12e_toy.py', None),
    'dino-4scale': ('toy/dino-4scale_tiny-r18_1xb2-12e_toy.py', None),
    # tools/pth_transfer.py output, exported with the stock config it names
    'ks-dab-detr (converted)': ('toy/ks_detr/ks-dab-detr_tiny-r18_1xb2-12e_toy.py',
                                ('toy/dab-detr_tiny-r18_1xb2-12e_toy.py', [])),
    'dac-deformable-detr-refine-twostage (converted)': (
        'toy/dac_detr/dac-deformable-detr-refine-twostage_tiny-r18_1xb2-12e_toy.py',
        (DEFORMABLE, ['model.with_box_refine=True', 'model.as_two_stage=True'])),
}
VAL_IMAGES = 3  # toy val images 0-2: network inputs 120x160, 160x160 and 160x120
TOP = 10  # detections compared box by box


def _trained_like(rel_cfg, data_root, path):
    """A checkpoint of ``rel_cfg`` with seeded non-trivial weights (off the zero-init box
    layer) and the toy classes in its meta; returns (cfg, model in eval mode)."""
    cfg = load_toy_config(rel_cfg, data_root)
    model = perturb_parameters(build_toy_model(cfg), seed=3).eval()
    gen = torch.Generator().manual_seed(4)
    with torch.no_grad():  # spread the scores: a fresh classifier gives ~0.018 everywhere
        for name, p in model.named_parameters():
            if name.startswith('bbox_head.') and 'cls' in name:  # fc_cls / cls_branches
                p.add_(torch.randn(p.shape, generator=gen) * 0.2)
    meta = dict(dataset_meta=dict(classes=CLASSES), cfg=cfg.pretty_text)  # as the Runner's
    torch.save(dict(meta=meta, state_dict=model.state_dict()), path)
    return cfg, model


def _export(capsys, args):
    capsys.readouterr()
    export_onnx.main([str(a) for a in args])
    return capsys.readouterr().out.strip().splitlines()


def _refusal(capsys, args, out):
    """The tool exits with one ``export_onnx.py: error:`` line and writes nothing."""
    with pytest.raises(SystemExit) as info:
        export_onnx.main([str(a) for a in args])
    msg = str(info.value.code)
    assert msg.startswith('export_onnx.py: error: ') and '\n' not in msg, msg
    folder = osp.dirname(str(out))
    if osp.isdir(folder):
        assert sorted(os.listdir(folder)) == [], os.listdir(folder)
    return msg


def _compare(onnx_out, pred):
    """All k scores within 1e-4; each of the top ``TOP`` ONNX detections is one PyTorch
    detection (one to one) with the same label, a score within 1e-4 and a box within
    1e-2 px. Matching, not position by position: two scores closer than the round-off may
    come out in either order."""
    boxes, scores, labels = onnx_out
    want_boxes, want_scores, want_labels = (pred.bboxes.numpy(), pred.scores.numpy(),
                                            pred.labels.numpy())
    assert boxes.shape == want_boxes.shape and labels.dtype == np.int64
    np.testing.assert_allclose(scores, want_scores, atol=1e-4, rtol=0)
    unused = np.ones(len(want_scores), bool)
    for i in range(TOP):
        fits = (unused & (want_labels == labels[i]) &
                (np.abs(want_scores - scores[i]) <= 1e-4) &
                (np.abs(want_boxes - boxes[i]).max(1) <= 1e-2))
        assert fits.any(), (i, boxes[i], scores[i], labels[i], want_boxes[:TOP],
                            want_scores[:TOP], want_labels[:TOP])
        unused[np.flatnonzero(fits)[0]] = False


@pytest.mark.parametrize('family', sorted(FAMILIES))
def test_family_matches_pytorch(family, toy_data_root, tmp_path, capsys):
    rel_cfg, converted = FAMILIES[family]
    cfg, model = _trained_like(rel_cfg, toy_data_root, tmp_path / 'model.pth')
    ckpt, export_cfg, options = tmp_path / 'model.pth', rel_cfg, []
    if converted:
        ckpt = tmp_path / 'stock.pth'
        pth_transfer.transfer(str(tmp_path / 'model.pth'), str(ckpt))
        export_cfg, options = converted
    out = tmp_path / 'model.onnx'
    args = [osp.join(ROOT, 'configs', export_cfg), ckpt, '--out', out]
    lines = _export(capsys, args + (['--cfg-options'] + options if options else []))
    assert lines[0].startswith(f'wrote {out} (') and 'dynamic H x W, opset 17' in lines[0]

    import onnx
    graph = onnx.load(str(out)).graph
    assert {n.domain for n in graph.node} <= {'', 'ai.onnx'}  # no custom operator
    if 'deformable' in family or 'dino' in family:
        assert 'GridSample' in {n.op_type for n in graph.node}  # mmcv's pure-torch path

    sess, meta = onnx_demo.load_session(str(out))
    assert meta['classes'] == list(CLASSES) and meta['input']['static_hw'] is None
    batch = toy_batch(cfg, toy_data_root, 'val', VAL_IMAGES)
    shapes = set()
    for i in range(VAL_IMAGES):
        one = {k: v[i:i + 1] for k, v in batch.items()}
        with torch.no_grad():
            data = model.data_preprocessor(one, False)
            pred = model.predict(data['inputs'], data['data_samples'], rescale=False)[0]
        img = onnx_demo.read_image(one['data_samples'][0].img_path)
        x, _ = onnx_demo.preprocess(img, meta)  # numpy/cv2 = mmdet's pipeline + preprocessor
        np.testing.assert_allclose(x, data['inputs'].numpy(), atol=1e-5, rtol=0)
        shapes.add(x.shape)
        _compare(sess.run(None, {'image': x}), pred.pred_instances)
        # the demo's boxes in original-image pixels: predict(rescale=True) divides the same
        # boxes by the pipeline's scale factor
        assert onnx_demo.resize(img, meta)[1] == pred.scale_factor
        pred.pred_instances.bboxes /= pred.pred_instances.bboxes.new_tensor(
            pred.scale_factor).repeat(2)
        _compare(onnx_demo.detect(sess, meta, img), pred.pred_instances)
    assert len(shapes) == VAL_IMAGES  # one dynamic file served three input sizes


def test_static_shape(toy_data_root, tmp_path, capsys):
    rel_cfg = FAMILIES['detr'][0]
    _, model = _trained_like(rel_cfg, toy_data_root, tmp_path / 'model.pth')
    out = tmp_path / 'static.onnx'
    lines = _export(capsys, [osp.join(ROOT, 'configs', rel_cfg), tmp_path / 'model.pth',
                             '--out', out, '--shape', 96, 128])
    assert 'fixed 96x128' in lines[0], lines
    sess, meta = onnx_demo.load_session(str(out))
    assert meta['input']['static_hw'] == [96, 128]
    image = torch.randn(1, 3, 96, 128, generator=torch.Generator().manual_seed(1))
    sample = dict(img_shape=(96, 128), batch_input_shape=(96, 128), scale_factor=(1., 1.),
                  ori_shape=(96, 128))
    from mmdet.structures import DetDataSample
    with torch.no_grad():
        pred = model.predict(image, [DetDataSample(metainfo=sample)], rescale=False)[0]
    _compare(sess.run(None, {'image': image.numpy()}), pred.pred_instances)
    with pytest.raises(Exception, match='[Ii]nvalid|dimension'):
        sess.run(None, {'image': np.zeros((1, 3, 128, 96), np.float32)})
    # the demo fits any image into 96x128 and pads
    img = onnx_demo.read_image(osp.join(toy_data_root, 'val', '000002.png'))  # 160x120
    x, scale = onnx_demo.preprocess(img, meta)
    assert x.shape == (1, 3, 96, 128) and scale == (72 / 120, 96 / 160)
    assert np.all(x[..., 72:] == 0)
    boxes, _, _ = onnx_demo.detect(sess, meta, img)
    assert boxes.shape == (20, 4)
    # the latency benchmark runs both on the file's input size
    from mmdet_ksdetr.deployment.benchmark import benchmark
    threads = torch.get_num_threads()
    try:
        rows, hw = benchmark(osp.join(ROOT, 'configs', rel_cfg), str(tmp_path / 'model.pth'),
                             str(out), threads=(1, ), runs=2, warmup=0)
    finally:
        torch.set_num_threads(threads)
    assert hw == (96, 128) and [r['threads'] for r in rows] == [1], rows
    assert rows[0]['pytorch_ms'] > 0 and rows[0]['onnxruntime_ms'] > 0, rows


def test_refusals_one_line_nothing_written(toy_data_root, tmp_path, capsys):
    rel_cfg = osp.join(ROOT, 'configs', FAMILIES['detr'][0])
    good = save_random_checkpoint(FAMILIES['detr'][0], str(tmp_path / 'detr.pth'))
    outdir = tmp_path / 'out'
    outdir.mkdir()
    out = outdir / 'm.onnx'

    (tmp_path / 'bad.pth').write_bytes(b'not a checkpoint')
    msg = _refusal(capsys, [rel_cfg, tmp_path / 'bad.pth', '--out', out], out)
    assert 'bad.pth' in msg and 'not a PyTorch checkpoint' in msg, msg

    other = save_random_checkpoint(DEFORMABLE, str(tmp_path / 'deformable.pth'))
    msg = _refusal(capsys, [rel_cfg, other, '--out', out], out)
    assert 'does not fit the model (DETR)' in msg, msg

    retina = write_toy_retinanet_config(tmp_path)
    msg = _refusal(capsys, [retina, good, '--out', out], out)
    assert 'RetinaNet is not a DETR-family detector' in msg, msg

    msg = _refusal(capsys, [rel_cfg, good, '--out', tmp_path / 'missing' / 'm.onnx'],
                   tmp_path / 'missing' / 'm.onnx')
    assert 'does not exist: create it first' in msg, msg
    msg = _refusal(capsys, [rel_cfg, good, '--out', outdir], out)
    assert 'is a folder' in msg, msg
    msg = _refusal(capsys, [rel_cfg, good, '--out', out, '--opset', 13], out)
    assert 'at least 16' in msg, msg
    if os.geteuid() != 0:  # root writes into read-only folders
        outdir.chmod(0o555)
        try:
            msg = _refusal(capsys, [rel_cfg, good, '--out', out], out)
            assert 'no write permission' in msg, msg
        finally:
            outdir.chmod(0o755)


def test_cli_exit_code_and_demo_without_torch(toy_data_root, tmp_path, capsys):
    """The tool as a user runs it (exit status, one stderr line); the demo with torch, mmdet,
    mmcv, mmengine and this package made unimportable."""
    rel_cfg = osp.join(ROOT, 'configs', FAMILIES['detr'][0])
    good = save_random_checkpoint(FAMILIES['detr'][0], str(tmp_path / 'detr.pth'))
    res = run_tool([sys.executable, 'tools/deployment/export_onnx.py',
                    write_toy_retinanet_config(tmp_path), good, '--out', tmp_path / 'r.onnx'])
    assert res.returncode != 0 and not (tmp_path / 'r.onnx').exists()
    assert res.stderr.strip().splitlines() == [
        'export_onnx.py: error: RetinaNet is not a DETR-family detector; export_onnx.py '
        'exports DETR, Deformable DETR, Conditional DETR, DAB-DETR, DN-DETR and DINO '
        'detectors'], res.stderr[-2000:]

    _export(capsys, [rel_cfg, good, '--out', tmp_path / 'm.onnx'])
    image = osp.join(toy_data_root, 'val', '000001.png')
    blocker = ("import sys, runpy\n"
               "for m in ('torch', 'mmdet', 'mmcv', 'mmengine', 'mmdet_ksdetr'):\n"
               "    sys.modules[m] = None  # `import m` raises ImportError\n"
               "sys.argv = sys.argv[1:]\n"
               "runpy.run_path(sys.argv[0], run_name='__main__')\n"
               "assert not {'torch', 'mmdet'} & {k for k, v in sys.modules.items() if v}\n")
    vis = tmp_path / 'vis.png'
    res = run_tool([sys.executable, '-c', blocker, 'tools/deployment/onnx_demo.py',
                    str(tmp_path / 'm.onnx'), image, '--out', str(vis), '--score-thr', '0'])
    assert res.returncode == 0, res.stderr[-2000:]
    lines = res.stdout.strip().splitlines()
    assert lines[-1] == f'20 detections drawn in {vis}' and len(lines) == 21, lines
    assert lines[0].split()[0] in TOY_CLASSES  # save_random_checkpoint's meta
    import cv2
    drawn = cv2.imread(str(vis))
    assert drawn.shape == cv2.imread(image).shape
    assert not np.array_equal(drawn, cv2.imread(image))
    res = run_tool([sys.executable, '-c', blocker, 'tools/deployment/onnx_demo.py',
                    str(good), image])
    lines = res.stderr.strip().splitlines()
    assert res.returncode != 0 and len(lines) == 1, res.stderr[-2000:]
    assert lines[0].startswith(f'onnx_demo.py: error: cannot load "{good}" with onnxruntime')
