"""Host syncs on the training hot path (the library runs on CUDA and with ``--amp``).

Every ``.item()``, ``.cpu()``, ``.numpy()``, ``.tolist()``, ``nonzero`` and ``print`` in the
per-step code (models, distillers, training hooks) waits for the GPU. Each one left must be in
``SOURCE_SYNCS`` of ``host_sync_allowlist.py`` (the list ``test_device_audit.py`` reads too)
with the reason it stays, keyed by file and enclosing function, so a new sync fails this test
until someone decides it is needed."""
import ast
import os
import os.path as osp

from host_sync_allowlist import SOURCE_SYNCS as ALLOWED

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
HOT_PATH = ('mmdet_ksdetr/models', 'mmdet_ksdetr/distill', 'mmdet_ksdetr/engine/hooks',
            'mmdet_ksdetr/utils/device.py', 'mmdet_ksdetr/utils/divergence.py')
SYNC_METHODS = {'item', 'cpu', 'numpy', 'tolist', 'nonzero'}
SYNC_FUNCTIONS = {'print'}


def _python_files(folder):
    if folder.endswith('.py'):
        yield folder
        return
    for dirpath, _, files in os.walk(folder):
        for name in sorted(files):
            if name.endswith('.py'):
                yield osp.join(dirpath, name)


class _SyncFinder(ast.NodeVisitor):
    """(qualname of the enclosing function, call name, line) of every sync call."""

    def __init__(self):
        self.scope, self.hits = [], []

    def _visit_scope(self, node):
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _visit_scope

    def visit_Call(self, node):
        f = node.func
        name = None
        if isinstance(f, ast.Attribute) and f.attr in SYNC_METHODS:
            name = f.attr
        elif isinstance(f, ast.Name) and f.id in SYNC_FUNCTIONS:
            name = f.id
        if name:
            self.hits.append(('.'.join(self.scope) or None, name, node.lineno))
        self.generic_visit(node)


def sync_calls(path):
    """``(qualname, call, line)`` of the host-sync calls in one file."""
    with open(path, encoding='utf-8') as f:
        finder = _SyncFinder()
        finder.visit(ast.parse(f.read(), filename=path))
    return finder.hits


def unexplained_syncs(root=ROOT, folders=HOT_PATH, allowed=None):
    """``path:line: call in qualname`` of every sync call not in the allow-list."""
    allowed = ALLOWED if allowed is None else allowed
    bad = []
    for folder in folders:
        for path in _python_files(osp.join(root, folder)):
            rel = osp.relpath(path, root).replace(os.sep, '/')
            for qualname, call, line in sync_calls(path):
                if (rel, qualname, call) not in allowed:
                    bad.append(f'{rel}:{line}: .{call}() in {qualname}')
    return bad


def test_no_unexplained_host_sync_on_the_hot_path():
    bad = unexplained_syncs()
    assert not bad, ('host syncs on the training hot path; remove them (keep tensors on the '
                     'device, batch transfers with mmdet_ksdetr.utils.device.to_host) or add '
                     'them to host_sync_allowlist.py with a reason:\n' + '\n'.join(bad))


def test_every_allowed_entry_is_still_used():
    """A stale allow-list entry would silently allow a future sync in that function."""
    used = set()
    for folder in HOT_PATH:
        for path in _python_files(osp.join(ROOT, folder)):
            rel = osp.relpath(path, ROOT).replace(os.sep, '/')
            used.update((rel, q, c) for q, c, _ in sync_calls(path))
    assert not set(ALLOWED) - used, sorted(set(ALLOWED) - used)


def test_the_check_finds_syncs(tmp_path):
    pkg = tmp_path / 'pkg'
    pkg.mkdir()
    (pkg / 'm.py').write_text(
        'class A:\n'
        '    def f(self, x):\n'
        '        n = x.sum().item()\n'
        '        return x.cpu().numpy(), x.tolist(), x.nonzero()\n'
        'def g(x):\n'
        '    print(x)\n'
        '    return x + 1\n')
    bad = unexplained_syncs(str(tmp_path), ('pkg', ), allowed={})
    assert [b.split(': ', 1)[1] for b in bad] == [
        '.item() in A.f', '.numpy() in A.f', '.cpu() in A.f', '.tolist() in A.f',
        '.nonzero() in A.f', '.print() in g']
    allowed = {('pkg/m.py', 'A.f', c): 'why' for c in ('item', 'cpu', 'numpy', 'tolist',
                                                       'nonzero')}
    assert unexplained_syncs(str(tmp_path), ('pkg', ), allowed=allowed) == [
        'pkg/m.py:6: .print() in g']
