"""capture_detr / DETRInternals on the five toy DETR-family detectors: shapes, normalised
cxcywh boxes, last layer == what predict() turns into detections, capturing the loss does not
change it and runs the head once, no hook is left behind, DINO denoising queries are sliced off
(or kept and counted), pipelines the capture cannot see are refused."""
import pytest
import torch
from toy_helpers import TOY_DETRS, build_toy, disable_dropout, toy_inputs

from mmdet_ksdetr.distill.core import DETRInternals, capture_detr, get_detr_internals

TOY = TOY_DETRS
REF_DIM = dict(detr=None, conditional=2, dab=4, deformable=2, dino=4)


def _data(cfg, model, data_root, training):
    data = toy_inputs(model, cfg, data_root, 'train' if training else 'val')
    return data['inputs'], data['data_samples']


@pytest.mark.parametrize('name', list(TOY))
def test_internals_shapes_and_predict_equivalence(name, toy_data_root):
    cfg, model = build_toy(TOY[name], toy_data_root)
    model.eval()
    inputs, samples = _data(cfg, model, toy_data_root, training=False)
    with torch.no_grad():
        it = get_detr_internals(model, inputs, samples)
        preds = model.predict(inputs, [s.clone() for s in samples], rescale=False)
        tensor_out = model._forward(inputs, samples)
    assert isinstance(it, DETRInternals)
    L = cfg.model.decoder.num_layers
    N = cfg.model.num_queries
    C = model.bbox_head.cls_out_channels
    B = len(samples)
    assert it.cls_logits.shape == (L, B, N, C)
    assert it.bbox_preds.shape == (L, B, N, 4)
    assert it.hidden_states.shape == (L, B, N, 256)
    assert it.queries.shape[:2] == (B, N)
    assert it.num_denoising_queries == 0
    assert it.num_classes == cfg.model.bbox_head.num_classes
    assert it.use_sigmoid == (name != 'detr')
    if REF_DIM[name] is None:
        assert it.reference_points is None
    else:
        assert it.reference_points.shape == (L, B, N, REF_DIM[name])
    if name == 'dino':
        assert it.query_pos is None
    else:
        assert it.query_pos.shape[:2] == (B, N)
    assert len(it.neck_feats) == (4 if name in ('deformable', 'dino') else 1)
    assert all(f.shape[:2] == (B, 256) for f in it.neck_feats)
    assert it.img_shapes == tuple(tuple(s.img_shape) for s in samples)
    assert it.memory.shape[0] == B
    # normalised cxcywh
    assert it.bbox_preds.min() >= 0 and it.bbox_preds.max() <= 1
    # identical to the tensor-mode forward of the stock detector
    torch.testing.assert_close(it.cls_logits, tensor_out[0])
    torch.testing.assert_close(it.bbox_preds, tensor_out[1])
    # the last layer is exactly what predict() post-processes
    metas = [s.metainfo for s in samples]
    mine = model.bbox_head.predict_by_feat(it.cls_logits[-1:], it.bbox_preds[-1:], metas,
                                           rescale=False)
    for a, b in zip(mine, preds):
        torch.testing.assert_close(a.bboxes, b.pred_instances.bboxes)
        torch.testing.assert_close(a.scores, b.pred_instances.scores)
        assert torch.equal(a.labels, b.pred_instances.labels)
    # pixel boxes: normalisation is by img_shape (not the padded shape)
    xyxy = it.bboxes_xyxy(clamp=True)[-1]
    for b in range(B):
        h, w = it.img_shapes[b]
        assert xyxy[b, :, 0::2].max() <= w and xyxy[b, :, 1::2].max() <= h
    # nothing is left behind on the instance or its modules
    assert 'forward_decoder' not in vars(model) and 'extract_feat' not in vars(model)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


@pytest.mark.parametrize('name', ['deformable', 'dino'])
def test_recording_loss_keeps_loss_and_gives_gradients(name, toy_data_root):
    cfg, model = build_toy(TOY[name], toy_data_root)
    model.train()
    inputs, samples = _data(cfg, model, toy_data_root, training=True)
    torch.manual_seed(1)
    ref = model.loss(inputs, samples)
    torch.manual_seed(1)
    capture = capture_detr(model, inputs, samples, loss=True)
    losses = capture.losses
    assert set(losses) == set(ref)
    for k in ref:
        torch.testing.assert_close(losses[k], ref[k], msg=k)
    it = capture.internals
    assert it.cls_logits.requires_grad and it.hidden_states.requires_grad
    assert it.cls_logits.shape[2] == cfg.model.num_queries
    it.cls_logits.sum().backward()
    assert model.bbox_head.cls_branches[0].weight.grad is not None


@pytest.mark.parametrize('name', ['deformable', 'dino', 'conditional'])
def test_captured_loss_reuses_the_head_pass(name, toy_data_root):
    """With the loss the head runs once: the internals' logits and boxes are the head's own
    loss-pass outputs (gradients through one head pass), equal to a fresh head call on the
    captured head inputs; the head's hooks are removed afterwards."""
    cfg, model = build_toy(TOY[name], toy_data_root)
    model.train()
    inputs, samples = _data(cfg, model, toy_data_root, training=True)
    calls = []
    model.bbox_head.register_forward_hook(lambda *a: calls.append(1))
    it = capture_detr(model, inputs, samples, loss=True, keep_denoising=True).internals
    assert len(calls) == 1
    assert 'forward' not in vars(model.bbox_head)
    assert len(model.bbox_head._forward_hooks) == 1  # the test's own hook only
    params = ('hidden_states', 'references')
    fresh = model.bbox_head(**{k: v for k, v in it.head_inputs.items() if k in params})
    assert len(calls) == 2
    torch.testing.assert_close(it.cls_logits, fresh[0])
    torch.testing.assert_close(it.bbox_preds, fresh[1])


def test_internals_without_loss_equal_the_loss_pass(toy_data_root):
    """get_detr_internals (no loss) runs the head itself on the same head inputs: the same
    logits and boxes as the capture of the loss pass (train mode, dropout off)."""
    cfg, model = build_toy(TOY['deformable'], toy_data_root)
    disable_dropout(model).train()
    inputs, samples = _data(cfg, model, toy_data_root, training=True)
    with torch.no_grad():
        ref = get_detr_internals(model, inputs, samples)
        it = capture_detr(model, inputs, samples, loss=True).internals
    torch.testing.assert_close(it.cls_logits, ref.cls_logits)
    torch.testing.assert_close(it.bbox_preds, ref.bbox_preds)


def test_dino_denoising_queries_kept_or_sliced(toy_data_root):
    cfg, model = build_toy(TOY['dino'], toy_data_root)
    model.train()
    inputs, samples = _data(cfg, model, toy_data_root, training=True)
    torch.manual_seed(3)
    full = get_detr_internals(model, inputs, samples, keep_denoising=True)
    ndn = full.num_denoising_queries
    assert ndn > 0 and ndn == full.dn_meta['num_denoising_queries']
    nq = cfg.model.num_queries
    assert full.cls_logits.shape[2] == ndn + nq
    assert full.queries.shape[1] == ndn + nq
    assert full.reference_points.shape[2] == ndn + nq
    sliced = full.without_denoising()
    assert sliced.num_denoising_queries == 0
    assert sliced.cls_logits.shape[2] == nq and sliced.queries.shape[1] == nq
    torch.testing.assert_close(sliced.cls_logits, full.cls_logits[:, :, ndn:])
    torch.testing.assert_close(sliced.reference_points, full.reference_points[:, :, ndn:])
    # the head inputs stay complete (bbox_head.loss needs the denoising part)
    assert full.head_inputs['hidden_states'].shape[2] == ndn + nq
    torch.manual_seed(3)
    default = get_detr_internals(model, inputs, samples)
    assert default.num_denoising_queries == 0
    torch.testing.assert_close(default.hidden_states, sliced.hidden_states)


def test_teacher_eval_is_deterministic_and_detach(toy_data_root):
    cfg, model = build_toy(TOY['deformable'], toy_data_root)
    model.eval()
    inputs, samples = _data(cfg, model, toy_data_root, training=True)
    with torch.no_grad():
        a = get_detr_internals(model, inputs, samples)
        b = get_detr_internals(model, inputs, samples)
    assert torch.equal(a.cls_logits, b.cls_logits) and torch.equal(a.bbox_preds, b.bbox_preds)
    model.train()
    c = get_detr_internals(model, inputs, samples).detach()
    assert not c.cls_logits.requires_grad and not c.hidden_states.requires_grad


def test_not_a_detr_raises_clear_error():
    with pytest.raises(TypeError, match='not a DETR-family detector'):
        get_detr_internals(torch.nn.Linear(2, 2), torch.zeros(1), [])


def test_pipelines_the_capture_cannot_see_are_refused(toy_data_root):
    """A detector whose forward_transformer / loss add passes of their own (as KS-DETR does)
    is refused with a clear error instead of being run without them."""
    from mmdet.models.detectors import DeformableDETR
    cfg, model = build_toy(TOY['deformable'], toy_data_root)

    class ExtraTransformerPass(DeformableDETR):

        def forward_transformer(self, img_feats, batch_data_samples=None):
            return super().forward_transformer(img_feats, batch_data_samples)

    class ExtraLoss(DeformableDETR):

        def loss(self, batch_inputs, batch_data_samples):
            return super().loss(batch_inputs, batch_data_samples)

    inputs, samples = _data(cfg, model, toy_data_root, training=False)
    model.__class__ = ExtraTransformerPass
    with pytest.raises(TypeError, match='overrides forward_transformer'):
        get_detr_internals(model, inputs, samples)
    model.__class__ = ExtraLoss
    get_detr_internals(model, inputs, samples)  # the loss is not needed here
    with pytest.raises(TypeError, match='overrides loss'):
        capture_detr(model, inputs, samples, loss=True)


KS_DN_TOY = ['toy/ks_detr/ks-deformable-detr_tiny-r18_1xb2-12e_toy.py',
             'toy/ks_detr/ks-dn-detr_tiny-r18_1xb2-12e_toy.py',
             'toy/dn-detr_tiny-r18_1xb2-12e_toy.py',
             'toy/dn-deformable-detr_tiny-r18_1xb2-12e_toy.py']


@pytest.mark.parametrize('rel_cfg', KS_DN_TOY)
def test_ks_and_dn_detectors_are_captured_as_student_and_teacher(rel_cfg, toy_data_root):
    """KS-DETR and DN detectors run the one stage order: as a student the capture's GT losses
    are the detector's own ``loss()`` (KS teacher-stream losses and DN losses included), as a
    teacher its internals are what the detector's inference computes."""
    cfg, model = build_toy(rel_cfg, toy_data_root)
    model.train()
    inputs, samples = _data(cfg, model, toy_data_root, training=True)
    torch.manual_seed(0)
    own = model.loss(inputs, samples)
    torch.manual_seed(0)
    captured = capture_detr(model, inputs, samples, loss=True).losses
    assert set(captured) == set(own)
    if 'ks_detr' in rel_cfg:
        assert any(k.startswith('ks_') for k in own)
    else:
        assert any('dn' in k for k in own)
    for k, v in own.items():
        assert torch.allclose(captured[k], v, rtol=1e-6, atol=1e-7), k
    model.eval()
    inputs, samples = _data(cfg, model, toy_data_root, training=False)
    with torch.no_grad():
        it = get_detr_internals(model, inputs, samples)
        cls_scores, bbox_preds = model._forward(inputs, samples)
    assert torch.allclose(it.cls_logits, cls_scores, atol=1e-6)
    assert torch.allclose(it.bbox_preds, bbox_preds, atol=1e-6)
