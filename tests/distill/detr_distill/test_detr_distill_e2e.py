"""End to end on the toy set, as a user runs it: train a tiny teacher briefly (tools/train.py),
distil with `bash tools/dist_train.sh <toy distill config> 2` (CPU, gloo), convert the last
checkpoint with tools/pth_transfer.py, and evaluate it with tools/test.py and the student
config: the metrics and every predicted box equal what the distillation run's own validation
produced. Validation and test use batch_size=1, so both see every image unpadded whatever the
process count (see docs/detr_distill.md)."""
import glob
import json
import os.path as osp
import pickle
import sys

import torch
from toy_helpers import CONFIGS, free_port, run_tool, slow, toy_data_cfg_options

TEACHER_CFG = osp.join(CONFIGS, 'toy', 'deformable-detr_tiny-r18_1xb2-12e_toy.py')
DISTILL_CFG = osp.join(CONFIGS, 'toy', 'detr_distill',
                       'detr-distill_deformable-detr_tiny-r18_1xb2-12e_toy.py')


def _last_metrics(json_files):
    for path in json_files:
        lines = [json.loads(x) for x in open(path) if 'coco/bbox_mAP' in x]
        if lines:
            return {k: v for k, v in lines[-1].items() if k.startswith('coco/')}
    raise AssertionError(f'no coco metrics in {json_files}')


def _load_preds(path):
    with open(path, 'rb') as f:  # written by this test's own runs
        preds = pickle.load(f)
    return {p['img_id']: p['pred_instances'] for p in preds}


@slow('DETRDistill train / convert / test (the all-distillers sweep runs it too)')
def test_toy_distill_train_convert_test_same_map(toy_data_root, tmp_path):
    ann = osp.join(toy_data_root, 'annotations', 'instances_val.json')
    data = toy_data_cfg_options(toy_data_root)
    # 1. a tiny teacher, trained briefly
    res = run_tool([sys.executable, 'tools/train.py', TEACHER_CFG, '--work-dir',
                    str(tmp_path / 'teacher'), '--cfg-options', 'train_cfg.max_epochs=1'] + data)
    assert res.returncode == 0, res.stderr[-3000:]
    teacher_ckpt = tmp_path / 'teacher' / 'epoch_1.pth'
    assert teacher_ckpt.exists()

    # a teacher checkpoint that does not fit stops training with the key report
    bad = torch.load(teacher_ckpt, map_location='cpu', weights_only=True)
    bad['state_dict']['renamed.weight'] = bad['state_dict'].pop('query_embedding.weight')
    torch.save(dict(state_dict=bad['state_dict']), tmp_path / 'bad_teacher.pth')
    res = run_tool([sys.executable, 'tools/train.py', DISTILL_CFG, '--work-dir',
                    str(tmp_path / 'bad'), '--cfg-options',
                    f'model.teacher_ckpt={tmp_path / "bad_teacher.pth"}'] + data)
    assert res.returncode != 0
    assert 'TeacherCheckpointError' in res.stderr and '1 missing keys' in res.stderr
    assert 'query_embedding.weight' in res.stderr and 'renamed.weight' in res.stderr
    assert not glob.glob(str(tmp_path / 'bad' / '*.pth'))

    # 2. distillation with 2 CPU processes; validation also dumps its predictions
    val_dump = tmp_path / 'val_preds.pkl'
    cfg = tmp_path / 'distill_cfg.py'
    cfg.write_text(f'_base_ = [{DISTILL_CFG!r}]\n'
                   f'val_evaluator = [dict(type="CocoMetric", ann_file={ann!r}, metric="bbox"),'
                   f' dict(type="DumpDetResults", out_file_path={str(val_dump)!r})]\n')
    res = run_tool(['bash', 'tools/dist_train.sh', str(cfg), '2', '--work-dir',
                    str(tmp_path / 'distill'), '--cfg-options',
                    f'model.teacher_ckpt={teacher_ckpt}', 'train_cfg.max_epochs=1',
                    'train_cfg.val_interval=1', 'val_dataloader.batch_size=1'] +
                   [o for o in data if not o.startswith('val_evaluator')],
                   env=dict(PORT=str(free_port())))
    assert res.returncode == 0, (res.stdout[-3000:], res.stderr[-3000:])
    log = res.stdout + res.stderr
    assert 'distill.loss_cls_kd' in log and 'distill.teacher_group.loss_cls' in log
    # quiet logs: the frozen teacher in one line, not one warning per parameter
    assert 'DETRDistill: teacher frozen' in log
    assert 'is skipped since its requires_grad=False' not in log
    assert 'pkg_resources is deprecated' not in log
    val_metrics = _last_metrics(glob.glob(str(tmp_path / 'distill' / '*' / 'vis_data' /
                                              'scalars.json')))

    # 3. convert the last checkpoint
    out = tmp_path / 'student.pth'
    res = run_tool([sys.executable, 'tools/pth_transfer.py', '--ckpt_path',
                    str(tmp_path / 'distill' / 'epoch_1.pth'), '--output_path', str(out)])
    assert res.returncode == 0, res.stderr[-3000:]
    converted = torch.load(out, weights_only=True)
    assert set(converted) == {'meta', 'state_dict'}
    assert not any(k.startswith(('teacher.', 'architecture.', 'distiller.'))
                   for k in converted['state_dict'])

    # 4. plain mmdet test with the student config (20 queries, as in the distill config)
    student_cfg = tmp_path / 'student_cfg.py'
    student_cfg.write_text(f'_base_ = [{TEACHER_CFG!r}]\nmodel = dict(num_queries=20)\n')
    test_dump = tmp_path / 'test_preds.pkl'
    res = run_tool([sys.executable, 'tools/test.py', str(student_cfg), str(out), '--work-dir',
                    str(tmp_path / 'test'), '--out', str(test_dump), '--cfg-options',
                    'test_dataloader.batch_size=1'] + data)
    assert res.returncode == 0, res.stderr[-3000:]
    test_metrics = _last_metrics(glob.glob(str(tmp_path / 'test' / '*' / '*.json')))
    assert test_metrics == val_metrics

    val_preds, test_preds = _load_preds(val_dump), _load_preds(test_dump)
    assert sorted(val_preds) == sorted(test_preds) and len(val_preds) == 8
    for img_id, v in val_preds.items():
        t = test_preds[img_id]
        torch.testing.assert_close(t['bboxes'], v['bboxes'], rtol=0, atol=0)
        torch.testing.assert_close(t['scores'], v['scores'], rtol=0, atol=0)
        assert torch.equal(t['labels'], v['labels'])
