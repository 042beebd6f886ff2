"""topk_detections = the stock head's ``_predict_by_feat_single`` (sigmoid and softmax heads),
and the wrapper = ``predict`` in PyTorch, without any export (fast)."""
import pytest
import torch
from mmdet.structures import DetDataSample
from toy_helpers import build_toy_model, load_toy_config, perturb_parameters

from mmdet_ksdetr.deployment import DetrExportWrapper, topk_detections


@pytest.mark.parametrize('rel_cfg', ['toy/detr_tiny-r18_1xb2-12e_toy.py',  # softmax
                                     'toy/deformable-detr_tiny-r18_1xb2-12e_toy.py'])
def test_wrapper_equals_predict(rel_cfg):
    model = perturb_parameters(build_toy_model(load_toy_config(rel_cfg)), seed=5).eval()
    image = torch.randn(1, 3, 96, 128, generator=torch.Generator().manual_seed(0))
    meta = dict(img_shape=(96, 128), batch_input_shape=(96, 128), scale_factor=(1., 1.),
                ori_shape=(96, 128))
    with torch.no_grad():
        want = model.predict(image, [DetDataSample(metainfo=meta)], rescale=False)[0]
        boxes, scores, labels = DetrExportWrapper(model)(image)
    want = want.pred_instances
    assert torch.equal(scores, want.scores) and torch.equal(labels, want.labels)
    torch.testing.assert_close(boxes, want.bboxes, atol=1e-4, rtol=0)


@pytest.mark.parametrize('use_sigmoid', [True, False])
def test_topk_equals_head_post_processing(use_sigmoid):
    rel = ('toy/deformable-detr_tiny-r18_1xb2-12e_toy.py' if use_sigmoid
           else 'toy/detr_tiny-r18_1xb2-12e_toy.py')
    head = build_toy_model(load_toy_config(rel)).bbox_head
    g = torch.Generator().manual_seed(0)
    cls = torch.randn(20, head.cls_out_channels, generator=g) * 3
    box = torch.rand(20, 4, generator=g) * 0.8 + 0.1  # some boxes cross the border
    box[:, 2:] *= 1.5
    want = head._predict_by_feat_single(cls, box, dict(img_shape=(70, 90)), rescale=False)
    boxes, scores, labels = topk_detections(cls, box, torch.tensor([70, 90]),
                                            head.test_cfg['max_per_img'], use_sigmoid)
    assert torch.equal(scores, want.scores) and torch.equal(labels, want.labels)
    torch.testing.assert_close(boxes, want.bboxes, atol=1e-4, rtol=0)
    assert boxes[:, 0::2].max() <= 90 and boxes[:, 1::2].max() <= 70 and boxes.min() >= 0
