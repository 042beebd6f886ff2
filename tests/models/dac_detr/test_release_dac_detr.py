"""ReleaseDACDETR (the released DAC-DETR architecture) on the tiny toy config: predict and
mode='tensor' run, and mode='tensor' equals a re-derivation, written from the release's
inference, of the parts that differ from mmdet's DINO: proposals ranked by class row 0 of the
encoder branch, positional query computed once from the top-k proposals and reused by every
decoder layer, learned content queries (mixed selection), look-forward-twice boxes, no final
decoder norm."""
import math

import pytest
import torch
from mmdet.models.layers.transformer import inverse_sigmoid
from toy_helpers import build_toy_model, load_toy_config, perturb_parameters, toy_batch

CFG = 'toy/dac_detr/release-dac-detr_tiny-r18_1xb2-12e_toy.py'


@pytest.fixture(scope='module')
def model_and_data(toy_data_root):
    cfg = load_toy_config(CFG, toy_data_root)
    model = perturb_parameters(build_toy_model(cfg, seed=0), seed=1, std=0.1).eval()
    with torch.no_grad():
        data = model.data_preprocessor(toy_batch(cfg, toy_data_root, 'val', 2), False)
    return model, data


def _sine(coords_unact: torch.Tensor, feats: int = 128) -> torch.Tensor:
    """(bs, nq, 4) unsigmoided boxes -> (bs, nq, 4 * feats): per coordinate, sin/cos pairs of
    sigmoid(x) * 2pi / 10000^(2i/feats)."""
    freqs = 10000 ** (2 * (torch.arange(feats) // 2) / feats)
    angles = coords_unact.sigmoid()[..., None] * (2 * math.pi) / freqs  # (bs, nq, 4, feats)
    return torch.stack((angles[..., 0::2].sin(), angles[..., 1::2].cos()), -1).flatten(2)


def _release_decoder(model, data):
    """Per-layer logits and boxes of the release's inference, from the encoder memory on."""
    feats = model.extract_feat(data['inputs'])
    enc_in, dec_in = model.pre_transformer(feats, data['data_samples'])
    memory = model.forward_encoder(**enc_in)['memory']
    mask, shapes = dec_in['memory_mask'], dec_in['spatial_shapes']
    out_memory, proposals = model.gen_encoder_output_proposals(memory, mask, shapes)
    num_layers, heads = model.decoder.num_layers, model.bbox_head
    enc_logits = heads.cls_branches[num_layers](out_memory)
    enc_coords = heads.reg_branches[num_layers](out_memory) + proposals
    top = enc_logits[..., 0].topk(model.num_queries, dim=1)[1]  # ranked by one class row
    coords = enc_coords.gather(1, top[..., None].expand(-1, -1, 4))
    dim = memory.size(-1)
    query_pos = model.pos_trans_norm(model.pos_trans_fc(_sine(coords, dim // 2)))[..., :dim]
    query = model.query_embedding.weight[None].expand(memory.size(0), -1, -1)
    ref = coords.sigmoid()
    ratios = dec_in['valid_ratios']
    logits, boxes = [], []
    for lid, layer in enumerate(model.decoder.layers):
        query = layer(query, query_pos=query_pos, value=memory, key_padding_mask=mask,
                      spatial_shapes=shapes, level_start_index=dec_in['level_start_index'],
                      valid_ratios=ratios,
                      reference_points=ref[:, :, None] * torch.cat([ratios, ratios], -1)[:, None])
        box = (heads.reg_branches[lid](query) + inverse_sigmoid(ref)).sigmoid()
        logits.append(heads.cls_branches[lid](query))
        boxes.append(box)
        ref = box  # look forward twice: the next layer refines this layer's box
    return torch.stack(logits), torch.stack(boxes)


def test_tensor_mode_equals_the_release_inference(model_and_data):
    model, data = model_and_data
    with torch.no_grad():
        cls, box = model(data['inputs'], data['data_samples'], mode='tensor')
        want_cls, want_box = _release_decoder(model, data)
    layers, bs, nq = model.decoder.num_layers, len(data['data_samples']), model.num_queries
    assert cls.shape == (layers, bs, nq, 3) and box.shape == (layers, bs, nq, 4)
    assert cls.std() > 0.1  # perturbed weights: the logits differ across queries
    torch.testing.assert_close(cls, want_cls, atol=1e-5, rtol=0)
    torch.testing.assert_close(box, want_box, atol=1e-5, rtol=0)


def test_content_queries_are_the_learned_embedding(model_and_data):
    model, data = model_and_data
    with torch.no_grad():
        before = model(data['inputs'], data['data_samples'], mode='tensor')[0]
        saved = model.query_embedding.weight.clone()
        model.query_embedding.weight.zero_()
        after = model(data['inputs'], data['data_samples'], mode='tensor')[0]
        model.query_embedding.weight.copy_(saved)
    assert model.query_embedding.weight.shape == (model.num_queries, model.embed_dims)
    assert (before - after).abs().max() > 1e-3


def test_predict_applies_the_release_nms(model_and_data):
    model, data = model_and_data
    with torch.no_grad():
        results = model.predict(data['inputs'], data['data_samples'])
    assert len(results) == 2
    for res in results:
        inst = res.pred_instances
        assert 0 < len(inst) <= 30
        assert inst.bboxes.shape == (len(inst), 4)
        assert (inst.scores[:-1] >= inst.scores[1:]).all()
        assert inst.labels.max() < 3


def test_needs_two_stage_and_box_refinement(toy_data_root):
    cfg = load_toy_config(CFG, toy_data_root)
    cfg.model.as_two_stage = False
    with pytest.raises(ValueError, match='as_two_stage=True'):
        build_toy_model(cfg)
