"""mmdet_ksdetr.quiet: the known third-party noise is filtered by message, nothing else."""
import logging
import subprocess
import sys

from mmdet_ksdetr.quiet import KnownNoiseFilter, quiet_logger


def _record(message, level=logging.WARNING):
    return logging.LogRecord('mmengine', level, __file__, 1, message, None, None)


def test_filter_drops_only_the_known_lines():
    f = KnownNoiseFilter()
    assert not f.filter(_record('teacher.backbone.conv1.weight is skipped since its '
                                'requires_grad=False'))
    assert not f.filter(_record('"FileClient" will be deprecated in future. Please use io'))
    # the same message about a student parameter is a real problem: kept
    assert f.filter(_record('backbone.conv1.weight is skipped since its requires_grad=False'))
    assert f.filter(_record('Epoch(train) [1][2/4] loss: 1.0'))


def test_quiet_logger_adds_one_filter():
    logger = logging.getLogger('mmdet_ksdetr_test_quiet')
    quiet_logger(logger)
    quiet_logger(logger)
    assert sum(isinstance(f, KnownNoiseFilter) for f in logger.filters) == 1


def test_import_filters_known_warnings_only():
    code = ('import warnings, mmdet_ksdetr\n'
            'warnings.warn("pkg_resources is deprecated as an API. See ...", UserWarning)\n'
            'warnings.warn("torch.meshgrid: in an upcoming release, it will be required", '
            'UserWarning)\n'
            'warnings.warn("something the user must see", UserWarning)\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert 'something the user must see' in out.stderr
    assert 'pkg_resources' not in out.stderr and 'meshgrid' not in out.stderr
