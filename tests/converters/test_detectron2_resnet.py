"""detectron2 ResNet names -> mmdet ResNet: every tensor of an mmdet ResNet-50 is produced
exactly once, with the value of the detectron2 tensor that plays its role."""
import pytest
import torch
from mmdet.models.backbones import ResNet

from mmdet_ksdetr.converters.release.detectron2_resnet import (convert_detectron2_resnet,
                                                               is_detectron2_resnet)


def _detectron2_names(depth_blocks=(3, 4, 6, 3)):
    """detectron2's ResNet-50 key names and shapes, written from its naming scheme."""
    shapes = {'stem.conv1.weight': (64, 3, 7, 7)}
    for t in ('weight', 'bias', 'running_mean', 'running_var'):
        shapes[f'stem.conv1.norm.{t}'] = (64,)
    in_ch = 64
    for s, n in enumerate(depth_blocks):
        mid, out = 64 * 2 ** s, 256 * 2 ** s
        for b in range(n):
            p = f'res{s + 2}.{b}'
            convs = {'conv1': (mid, in_ch if b == 0 else out, 1, 1), 'conv2': (mid, mid, 3, 3),
                     'conv3': (out, mid, 1, 1)}
            if b == 0:
                convs['shortcut'] = (out, in_ch, 1, 1)
            for c, shape in convs.items():
                shapes[f'{p}.{c}.weight'] = shape
                for t in ('weight', 'bias', 'running_mean', 'running_var'):
                    shapes[f'{p}.{c}.norm.{t}'] = (shape[0],)
        in_ch = out
    return shapes


def test_resnet50_maps_onto_mmdet_resnet50_exactly():
    shapes = _detectron2_names()
    g = torch.Generator().manual_seed(0)
    state = {'backbone.' + k: torch.randn(v, generator=g) for k, v in shapes.items()}
    state['transformer.x'] = torch.zeros(1)
    assert is_detectron2_resnet(state)
    out, used = convert_detectron2_resnet(state)
    assert used == {k for k in state if k.startswith('backbone.')}
    model = ResNet(depth=50, out_indices=(1, 2, 3), style='pytorch')
    own = {'backbone.' + k: v for k, v in model.state_dict().items()}
    assert set(out) == set(own)
    assert all(out[k].shape == own[k].shape for k in own)
    # role checks: stem, a first block's shortcut, a 3x3 conv deep in the net
    assert torch.equal(out['backbone.conv1.weight'], state['backbone.stem.conv1.weight'])
    assert torch.equal(out['backbone.bn1.running_var'],
                       state['backbone.stem.conv1.norm.running_var'])
    assert torch.equal(out['backbone.layer3.0.downsample.1.bias'],
                       state['backbone.res4.0.shortcut.norm.bias'])
    assert torch.equal(out['backbone.layer4.2.conv2.weight'], state['backbone.res5.2.conv2.weight'])
    model.load_state_dict({k[len('backbone.'):]: v for k, v in out.items()}, strict=True)


def test_unknown_backbone_key_is_named():
    with pytest.raises(KeyError, match='res2.0.conv4.weight'):
        convert_detectron2_resnet({'backbone.res2.0.conv4.weight': torch.zeros(1)})
