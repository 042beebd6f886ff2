"""``save_best`` in CrashSafeCheckpointHook: the previous best checkpoint is deleted only after
the new best one is on disk (mmengine deletes it first, so a crash during the save would leave
no best checkpoint at all), and an indicator without a new best keeps its file."""
import logging
import os

import pytest
from mmengine.logging import MessageHub

from mmdet_ksdetr.engine.hooks.checkpoint_hook import CrashSafeCheckpointHook


class _Runner:
    """What ``_save_best_checkpoint`` reads of a runner; each save records the files that
    were in the folder while it wrote."""

    def __init__(self, out_dir):
        self.epoch, self.iter = 0, 0
        self.message_hub = MessageHub.get_instance(f'best_ckpt_test_{id(self)}')
        self.logger = logging.getLogger('best_ckpt_test')
        self.out_dir = out_dir
        self.files_during_save = []

    def save_checkpoint(self, out_dir, filename, **kwargs):
        self.files_during_save.append(sorted(os.listdir(out_dir)))
        with open(os.path.join(out_dir, filename), 'w') as f:
            f.write('checkpoint')


def _hook(save_best, out_dir, rule='greater'):
    from mmengine.fileio import get_file_backend
    hook = CrashSafeCheckpointHook(interval=1, save_best=save_best, rule=rule)
    hook.out_dir = str(out_dir)
    hook.file_backend = get_file_backend(hook.out_dir)
    hook.best_ckpt_path = None
    return hook


def _validate(hook, runner, epoch, metrics):
    runner.epoch = runner.iter = epoch
    hook._save_best_checkpoint(runner, metrics)


@pytest.mark.parametrize('save_best', ['auto', 'coco/bbox_mAP'])
def test_previous_best_removed_only_after_the_new_one_is_saved(save_best, tmp_path):
    runner = _Runner(tmp_path)
    hook = _hook(save_best, tmp_path)
    _validate(hook, runner, 1, {'coco/bbox_mAP': 0.1})
    _validate(hook, runner, 2, {'coco/bbox_mAP': 0.3})
    _validate(hook, runner, 3, {'coco/bbox_mAP': 0.2})  # not better: nothing saved
    first, second = 'best_coco_bbox_mAP_epoch_1.pth', 'best_coco_bbox_mAP_epoch_2.pth'
    # the second save ran while the first best file was still there
    assert runner.files_during_save == [[], [first]]
    assert sorted(os.listdir(tmp_path)) == [second]
    assert hook.best_ckpt_path == str(tmp_path / second)
    assert runner.message_hub.get_info('best_ckpt') == str(tmp_path / second)
    assert runner.message_hub.get_info('best_score') == 0.3


def test_several_indicators_each_keep_their_own_best(tmp_path):
    runner = _Runner(tmp_path)
    hook = _hook(['coco/bbox_mAP', 'loss'], tmp_path, rule=['greater', 'less'])
    hook.best_ckpt_path_dict = {'coco/bbox_mAP': None, 'loss': None}
    _validate(hook, runner, 1, {'coco/bbox_mAP': 0.1, 'loss': 2.0})
    _validate(hook, runner, 2, {'coco/bbox_mAP': 0.3, 'loss': 3.0})  # only mAP improves
    _validate(hook, runner, 3, {'coco/bbox_mAP': 0.2, 'loss': 1.0})  # only loss improves
    assert sorted(os.listdir(tmp_path)) == ['best_coco_bbox_mAP_epoch_2.pth',
                                            'best_loss_epoch_3.pth']
    # epoch 1 saves both; each later save ran with the previous best files still there
    assert runner.files_during_save[2:] == [
        ['best_coco_bbox_mAP_epoch_1.pth', 'best_loss_epoch_1.pth'],
        ['best_coco_bbox_mAP_epoch_2.pth', 'best_loss_epoch_1.pth']]
    assert hook.best_ckpt_path_dict == {
        'coco/bbox_mAP': str(tmp_path / 'best_coco_bbox_mAP_epoch_2.pth'),
        'loss': str(tmp_path / 'best_loss_epoch_3.pth')}
