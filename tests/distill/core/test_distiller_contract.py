"""One contract for every distiller: losses bound by name from the class-level ``LOSSES``
table into ``self.losses``; TPRD as ``self.tprd_targets``, entering the algorithms only
through the targets (no algorithm reads the switch); ``SUPPORTS_TPRD`` refuses it in one line."""
import ast
import textwrap
import inspect

import pytest

from mmdet_ksdetr.distill import core, crosskd, d3etr, detr_distill, feature_kd, kd_detr, qskd
from mmdet_ksdetr.distill.core.detr_distill_base import DETRDistillBase

ALGORITHMS = [detr_distill.DETRDistill, kd_detr.KDDETR, d3etr.D3ETR, qskd.QSKD,
              crosskd.CrossKD, feature_kd.DETRFeatureKD]


def test_every_distiller_is_on_the_base_and_declares_its_losses():
    for algo in ALGORITHMS:
        assert issubclass(algo, DETRDistillBase)
        table = algo.LOSSES if algo is not feature_kd.DETRFeatureKD else {'x': object}
        assert table, algo.__name__
        assert set(algo.REQUIRED_LOSSES) <= set(algo.LOSSES), algo.__name__
    assert core.DETRDistillBase is DETRDistillBase


@pytest.mark.parametrize('algo', ALGORITHMS, ids=lambda a: a.__name__)
def test_no_algorithm_reads_the_tprd_switch_or_binds_losses_itself(algo):
    """``self.tprd`` / ``self.tprd_targets.enabled`` are never read inside an algorithm's
    methods, and only the base binds losses (one attribute, ``self.losses``)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(algo)))
    banned = {'tprd', 'refiner', 'parts', 'group_losses', 'fgd_losses', 'loss_cross'}
    for fn in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
        if fn.name == '__init__' and algo is detr_distill.DETRDistill:
            continue  # clamp_teacher_boxes=None follows the release of the mode (a default)
        for node in ast.walk(fn):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
                    node.value.id == 'self':
                assert node.attr not in banned, f'{algo.__name__}.{fn.name}: self.{node.attr}'
            if isinstance(node, ast.Call) and getattr(node.func, 'attr', '') == 'bind_losses':
                raise AssertionError(f'{algo.__name__}.{fn.name} binds losses itself')


def test_the_checker_catches_a_tprd_branch():
    class Bad(DETRDistillBase):
        LOSSES = dict(loss_x=object)

        def compute_distill_losses(self, s, t, samples):
            return {} if self.tprd else {}

    with pytest.raises(AssertionError, match='self.tprd'):
        test_no_algorithm_reads_the_tprd_switch_or_binds_losses_itself(Bad)
