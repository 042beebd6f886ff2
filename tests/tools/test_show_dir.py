"""``tools/test.py CFG CKPT --show-dir DIR`` draws the predictions of every detector family of
this library (KS-DETR, DAC-DETR, a distiller on its distillation config) through mmdet's
DetVisualizationHook: one drawing per test image, GT | predictions side by side."""
import glob
import os.path as osp

import numpy as np
import pytest
from PIL import Image
from toy_helpers import CONFIGS, run_tool, save_random_checkpoint, toy_data_cfg_options

NUM_IMAGES = 2
FAMILIES = {
    'ks-deformable': ('toy/ks_detr/ks-deformable-detr_tiny-r18_1xb2-12e_toy.py', []),
    'ks-dab': ('toy/ks_detr/ks-dab-detr_tiny-r18_1xb2-12e_toy.py', []),
    'dac-dino': ('toy/dac_detr/dac-dino-cdn-ice-4scale_tiny-r18_1xb2-12e_toy.py', []),
    'dac-deformable': ('toy/dac_detr/dac-deformable-detr-refine-twostage_tiny-r18_1xb2-12e_toy.py',
                       []),
    # the distiller's own config and checkpoint (teacher + student): predictions are the
    # student's; the teacher's weights come from the checkpoint, not from teacher_ckpt
    'detr-distill': ('toy/detr_distill/detr-distill_deformable-detr_tiny-r18_1xb2-12e_toy.py',
                     ['model.teacher_ckpt=None']),
}


def _test_images(data_root):
    """The first NUM_IMAGES images of the toy val set, in the dataset's order (file name)."""
    import json
    with open(osp.join(data_root, 'annotations', 'instances_val.json')) as f:
        images = json.load(f)['images']
    return [osp.join(data_root, 'val', im['file_name']) for im in images[:NUM_IMAGES]]


@pytest.mark.parametrize('family', FAMILIES)
def test_show_dir_draws_one_image_per_test_image(family, toy_data_root, tmp_path):
    rel_cfg, extra = FAMILIES[family]
    ckpt = save_random_checkpoint(rel_cfg, str(tmp_path / 'random.pth'))
    show_dir = tmp_path / 'show'
    res = run_tool(['python', 'tools/test.py', osp.join(CONFIGS, rel_cfg), ckpt, '--work-dir',
                    str(tmp_path / 'work'), '--show-dir', str(show_dir), '--cfg-options',
                    f'test_dataloader.dataset.indices={NUM_IMAGES}',
                    # draw every prediction of the random model (mmdet's default hides < 0.3)
                    'default_hooks.visualization.score_thr=0'] +
                   toy_data_cfg_options(toy_data_root) + extra)
    assert res.returncode == 0, res.stderr[-3000:]
    sources = _test_images(toy_data_root)
    drawn = sorted(glob.glob(str(show_dir / '*')))
    assert [osp.basename(p) for p in drawn] == sorted(osp.basename(p) for p in sources)
    for src in sources:
        image = np.asarray(Image.open(src).convert('RGB'), dtype=np.int64)
        out = np.asarray(Image.open(show_dir / osp.basename(src)).convert('RGB'),
                         dtype=np.int64)
        h, w, _ = image.shape
        assert out.shape == (h, 2 * w, 3), (out.shape, image.shape)  # GT | predictions
        assert out.var() > 0
        changed = (np.abs(out[:, w:] - image).max(axis=-1) > 0).mean()
        assert changed > 0.01, f'{src}: no predictions drawn ({changed:.4f} of pixels differ)'
