"""--cfg-options keys that match nothing in the config are one-line errors naming the nearest
key (mmengine would raise a TypeError deep in the build, or silently add the key)."""
import sys

import pytest
from toy_helpers import CONFIGS, load_toy_config, run_tool, toy_data_cfg_options

from mmdet_ksdetr.utils.cfg_options import check_cfg_option_keys, unknown_option_key
from mmdet_ksdetr.utils.errors import InputError

TOY = 'toy/deformable-detr_tiny-r18_1xb2-12e_toy.py'


@pytest.fixture(scope='module')
def cfg():
    return load_toy_config(TOY)


@pytest.mark.parametrize('key, expected', [
    ('train_cfg.max_epoch', 'EpochBasedTrainLoop (train_cfg.type) takes no argument '
     '"max_epoch" (remove or rename that key); did you mean train_cfg.max_epochs?'),
    ('optim_wrapper.optimizer.lrr', 'AdamW (optim_wrapper.optimizer.type) takes no argument '
     '"lrr" (remove or rename that key); did you mean optim_wrapper.optimizer.lr?'),
    ('trian_cfg.max_epochs', 'the config has no key "trian_cfg"; did you mean train_cfg?'),
    ('model.backbon.depth', 'model has no key "backbon"; did you mean model.backbone?'),
    ('model.bbox_head.loss_cls.gama', 'did you mean model.bbox_head.loss_cls.gamma?'),
])
def test_typos_name_the_nearest_key(cfg, key, expected):
    assert expected in unknown_option_key(cfg, key)
    with pytest.raises(InputError, match='--cfg-options-allow-new'):
        check_cfg_option_keys(cfg, {key: 1})
    check_cfg_option_keys(cfg, {key: 1}, allow_new=True)  # the user insists: mmengine's way


@pytest.mark.parametrize('key', [
    'train_cfg.max_epochs', 'train_dataloader.dataset.indices',  # an argument the type takes
    'randomness.seed',  # a runner key the config lacks
    'train_dataloader.dataset.pipeline.2.scale', 'data_root', 'optim_wrapper.clip_grad.max_norm',
    'default_hooks.checkpoint.save_best', 'model.test_cfg.max_per_img'])
def test_existing_and_accepted_keys_pass(cfg, key):
    assert unknown_option_key(cfg, key) is None


def test_keys_under_none_are_refused_even_with_allow_new(cfg):
    # mmengine's merge would raise "init_cfg is a dict in the child config but ... NoneType"
    with pytest.raises(InputError, match=r'model.backbone.init_cfg.type: model.backbone.'
                                         r'init_cfg is None in the config.*inherits this one$'):
        check_cfg_option_keys(cfg, {'model.backbone.init_cfg.type': 'Pretrained'},
                              allow_new=True)


def test_list_index_out_of_range(cfg):
    assert 'is a list of 5' in unknown_option_key(cfg, 'train_dataloader.dataset.pipeline.9.x')


@pytest.mark.parametrize('option, expected', [
    ('train_cfg.max_epoch=1', 'did you mean train_cfg.max_epochs?'),
    ('trian_cfg.max_epochs=7', 'did you mean train_cfg?'),
])
def test_train_tool_stops_on_a_typo(option, expected, toy_data_root, tmp_path):
    res = run_tool([sys.executable, 'tools/train.py', f'{CONFIGS}/{TOY}', '--work-dir',
                    str(tmp_path / 'w'), '--cfg-options', option] +
                   toy_data_cfg_options(toy_data_root))
    assert res.returncode != 0
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith('train.py: error: --cfg-options ') and expected in last, \
        res.stderr[-2000:]
    assert 'Traceback' not in res.stderr
