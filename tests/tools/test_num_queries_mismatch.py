"""A distilled student tested with a config of another ``num_queries`` (here: the 30-query
toy Deformable DETR config on a 20-query student checkpoint) stops tools/test.py with the
mis-shaped keys instead of evaluating random query embeddings."""
import sys

from toy_helpers import CONFIGS, run_tool, save_random_checkpoint, toy_data_cfg_options

STUDENT = 'toy/deformable-detr_tiny-r18-student_1xb2-12e_toy.py'  # 20 queries
TEACHER_SIZED = 'toy/deformable-detr_tiny-r18_1xb2-12e_toy.py'  # 30 queries


def test_wrong_num_queries_stops_test_tool(toy_data_root, tmp_path):
    ckpt = save_random_checkpoint(STUDENT, str(tmp_path / 'student.pth'))
    out = run_tool([sys.executable, 'tools/test.py', f'{CONFIGS}/{TEACHER_SIZED}', ckpt,
                    '--work-dir', str(tmp_path / 'w'), '--cfg-options'] +
                   toy_data_cfg_options(toy_data_root))
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith('test.py: error:') and 'mis-shaped keys' in last, last
    assert 'query_embedding.weight: (20, 512) in the checkpoint vs (30, 512) in the model' \
        in last, last
