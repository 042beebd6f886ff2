"""The model zoo as users and ``mim search`` read it: every metafile is indexed, every
``Config:`` loads, every released checkpoint row names its download, the release's AP and a
conversion command the converter CLI accepts, and docs/released_models.md lists every config
written for a release."""
import glob
import os.path as osp
import shlex
import sys

import pytest
import yaml
from mmengine.config import Config

from toy_helpers import ROOT

DOC = osp.join(ROOT, 'docs', 'released_models.md')
CLI = 'tools/model_converters/release_to_mmdet.py'
RELEASE_CONFIGS = sorted(
    osp.relpath(p, ROOT) for p in
    glob.glob(osp.join(ROOT, 'configs', 'detrex', '*.py')) +
    glob.glob(osp.join(ROOT, 'configs', '*', 'release', '*.py')))


def _read(path):
    with open(osp.join(ROOT, path)) as f:
        return yaml.safe_load(f)


METAFILES = sorted(osp.relpath(p, ROOT) for p in
                   glob.glob(osp.join(ROOT, 'configs', '**', 'metafile*.yml'), recursive=True))
MODELS = [(mf, m) for mf in METAFILES for m in _read(mf).get('Models', [])]
RELEASE_ROWS = [(mf, m) for mf, m in MODELS if 'Converted From' in m]


def _config_path(config):
    """A repository path, or ``mmdet::x`` (a config shipped inside the mmdet package)."""
    if config.startswith('mmdet::'):
        import mmdet
        return osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs', config[len('mmdet::'):])
    return osp.join(ROOT, config)


def test_every_metafile_is_in_the_model_index():
    indexed = _read('model-index.yml')['Import']
    assert sorted(indexed) == METAFILES


@pytest.mark.parametrize('config', sorted({m['Config'] for _, m in MODELS}))
def test_every_metafile_config_loads(config):
    path = _config_path(config)
    assert osp.isfile(path), f'{config} does not exist'
    cfg = Config.fromfile(path)
    assert 'model' in cfg


def test_every_release_row_names_its_download_ap_and_command():
    assert len(RELEASE_ROWS) >= 17  # detrex 5, KS-DETR 1+, DAC-DETR 7, DETRDistill 4
    for mf, m in RELEASE_ROWS:
        where = f'{mf}: {m["Name"]}'
        assert m.get('Weights', '').startswith(('https://', 'http://')), where
        assert m['Converted From']['Weights'] == m['Weights'], where
        metrics = m['Results'][0]['Metrics']
        assert isinstance(metrics.get('box AP (release)'), float), where
        assert 'release' in open(osp.join(ROOT, mf)).read().split('Models:')[0] + \
            str(m.get('Metadata', '')), where  # says the AP is the release's


@pytest.mark.parametrize('row', RELEASE_ROWS,
                         ids=lambda row: row[1]['Name'])
def test_release_row_command_is_accepted_by_the_converter(row):
    mf, m = row
    sys.path.insert(0, osp.join(ROOT, osp.dirname(CLI)))
    try:
        import release_to_mmdet
    finally:
        sys.path.pop(0)
    words = shlex.split(m['Converted From']['Command'])
    assert words[:2] == ['python', CLI], m['Name']
    args = release_to_mmdet.parse_args(words[2:])
    assert args.config == m['Config'] and args.src != args.dst, m['Name']


def test_released_models_doc_lists_every_release_config():
    assert len(RELEASE_CONFIGS) >= 14
    doc = open(DOC).read()
    missing = [c for c in RELEASE_CONFIGS if f'`{c}`' not in doc]
    assert not missing, f'docs/released_models.md does not list {missing}'
    for _, m in RELEASE_ROWS:  # and every release download
        assert m['Weights'] in doc, m['Name']
