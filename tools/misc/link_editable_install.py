"""Make an editable install of mmdet_ksdetr visible where OpenMMLab tools look for it.

    python tools/misc/link_editable_install.py      (tools/install.sh runs it)

``mim search / train / test mmdet_ksdetr`` look for ``<install location>/mmdet_ksdetr/.mim``,
and the install location of an editable install (``pip install -e .``) is site-packages, which
holds no ``mmdet_ksdetr`` folder: the code stays in the checkout. This links
``<site-packages>/mmdet_ksdetr`` to the checkout's ``mmdet_ksdetr`` package (whose ``.mim``
links to ``configs/``, ``tools/`` and ``model-index.yml``), so those tools, and imports, see the
checkout. Safe to run twice; does nothing for a regular (wheel) install. ``pip uninstall``
leaves the link behind, pointing nowhere (Python then ignores it); delete it by hand if you
like.
"""
import json
import os
import os.path as osp
import sys
from importlib import metadata
from urllib.parse import unquote, urlparse

PACKAGE = 'mmdet_ksdetr'


def editable_source():
    """The checkout folder of an editable install of the package, or None."""
    try:
        dist = metadata.distribution(PACKAGE)
    except metadata.PackageNotFoundError:
        raise SystemExit(f'link_editable_install.py: error: {PACKAGE} is not installed in '
                         f'{sys.prefix}: run `pip install -e .` in the checkout first')
    text = dist.read_text('direct_url.json')
    info = json.loads(text) if text else {}
    if not info.get('dir_info', {}).get('editable'):
        return None, dist
    return unquote(urlparse(info['url']).path), dist


def link(source, dist):
    """``<install location>/mmdet_ksdetr`` -> ``<source>/mmdet_ksdetr``; returns the link."""
    target = osp.join(source, PACKAGE)
    if not osp.isfile(osp.join(target, '.mim', 'model-index.yml')):
        raise SystemExit(f'link_editable_install.py: error: {target}/.mim/model-index.yml '
                         f'not found: reinstall with `pip install -e {source}` (setup.py '
                         f'creates .mim)')
    path = str(dist.locate_file(PACKAGE))
    if osp.islink(path):
        if osp.realpath(path) == osp.realpath(target):
            return path
        os.unlink(path)  # an older checkout's link
    elif osp.exists(path):
        raise SystemExit(f'link_editable_install.py: error: {path} exists and is not a link: '
                         f'uninstall the other copy of {PACKAGE} first')
    tmp = f'{path}.{os.getpid()}.tmp'
    os.symlink(target, tmp)
    os.replace(tmp, path)  # atomic
    return path


def main():
    source, dist = editable_source()
    if source is None:
        print(f'{PACKAGE} is not an editable install: nothing to link')
        return
    path = link(source, dist)
    print(f'{path} -> {osp.join(source, PACKAGE)} (mim sees the editable install)')


if __name__ == '__main__':
    main()
