"""No import cycle anywhere in the repository: the module-level import graph of the package,
the tools and the tests (built from the source with ``ast``, so nothing is imported) has no
cycle. An edge ``a -> b`` means module ``a`` imports module ``b`` (``from b import name``
counts ``b``, and ``b.name`` too when that is a module). Importing a package's ``__init__``
implicitly (as the first step of importing one of its modules) is not counted."""
import ast
import os
import os.path as osp

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SOURCES = ('mmdet_ksdetr', 'tools', 'tests')


def _module_name(path):
    rel = osp.relpath(path, ROOT)[:-3].replace(os.sep, '.')
    return rel[:-len('.__init__')] if rel.endswith('.__init__') else rel


def _tool_dirs():
    """Folders whose scripts put themselves (or are put) on sys.path and import each other by
    bare name: tools/, tools/analysis_tools/, tools/misc/ and tests/."""
    return [osp.join(ROOT, d) for d in ('tools', 'tools/analysis_tools', 'tools/misc', 'tests')]


def collect_modules():
    """``{module name: path}`` of every .py file under the package, tools and tests."""
    modules = {}
    for top in SOURCES:
        for dirpath, _, files in os.walk(osp.join(ROOT, top)):
            if '__pycache__' in dirpath:
                continue
            for f in files:
                if f.endswith('.py'):
                    path = osp.join(dirpath, f)
                    modules[_module_name(path)] = path
    return modules


def _resolve_relative(module, is_package, level, target):
    parts = module.split('.')
    base = parts if is_package else parts[:-1]
    base = base[:len(base) - (level - 1)]
    return '.'.join(base + ([target] if target else []))


def imports_of(module, path, modules):
    """The modules of ``modules`` that ``module`` imports."""
    tree = ast.parse(open(path).read(), path)
    is_package = path.endswith('__init__.py')
    bare = {osp.basename(p)[:-3]: m for m, p in modules.items()
            if osp.dirname(p) in _tool_dirs() and not p.endswith('__init__.py')}
    found = set()

    def add(name):
        if name in modules:
            found.add(name)
        elif name in bare:
            found.add(bare[name])

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = (_resolve_relative(module, is_package, node.level, node.module)
                    if node.level else node.module)
            add(base)
            for alias in node.names:
                add(f'{base}.{alias.name}')
    found.discard(module)
    return found


def find_cycle(graph):
    """One cycle of ``graph`` (``{node: set(nodes)}``) as a list of nodes, or None."""
    WHITE, GREY, BLACK = 0, 1, 2
    color = {n: WHITE for n in graph}
    stack = []

    def visit(n):
        color[n] = GREY
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if color.get(m, BLACK) == GREY:
                return stack[stack.index(m):] + [m]
            if color.get(m) == WHITE:
                cycle = visit(m)
                if cycle:
                    return cycle
        stack.pop()
        color[n] = BLACK
        return None

    for n in sorted(graph):
        if color[n] == WHITE:
            cycle = visit(n)
            if cycle:
                return cycle
    return None


def test_find_cycle_finds_a_cycle():
    assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == ['a', 'b', 'c', 'a']
    assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': set()}) is None


def test_no_import_cycle_in_the_repository():
    modules = collect_modules()
    assert 'mmdet_ksdetr.models' in modules and 'tools.train' in modules
    graph = {m: imports_of(m, p, modules) for m, p in modules.items()}
    cycle = find_cycle(graph)
    assert cycle is None, 'import cycle: ' + ' -> '.join(cycle)


#: layers of the package, lowest first: a module may import its own layer and those below it.
#: ``mmdet_ksdetr`` itself (the package ``__init__``), ``compat``, ``quiet`` and ``version`` sit
#: below everything (``compat`` is applied before anything registers).
LAYERS = (
    ('mmdet_ksdetr.compat', 'mmdet_ksdetr.quiet', 'mmdet_ksdetr.version', 'mmdet_ksdetr.registry'),
    ('mmdet_ksdetr.utils',),
    ('mmdet_ksdetr.models',),
    ('mmdet_ksdetr.converters',),
    ('mmdet_ksdetr.distill',),
    ('mmdet_ksdetr.engine', 'mmdet_ksdetr.analysis', 'mmdet_ksdetr.apis',
     'mmdet_ksdetr.deployment'),
)


def layer_of(module):
    """Index in :data:`LAYERS` of ``module`` (None outside the package's layers)."""
    for i, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + '.') for p in prefixes):
            return i
    return None


def upward_imports(graph):
    """``(importer, imported)`` pairs of ``graph`` whose imported module sits in a higher layer."""
    bad = []
    for a, targets in graph.items():
        la = layer_of(a)
        if la is None:
            continue
        for b in targets:
            lb = layer_of(b)
            if lb is not None and lb > la:
                bad.append((a, b))
    return sorted(bad)


def test_upward_imports_are_found():
    graph = {'mmdet_ksdetr.utils.x': {'mmdet_ksdetr.engine.runner'},
             'mmdet_ksdetr.distill.a': {'mmdet_ksdetr.models.b', 'mmdet_ksdetr.utils.c'}}
    assert upward_imports(graph) == [('mmdet_ksdetr.utils.x', 'mmdet_ksdetr.engine.runner')]


def test_imports_run_downward_only():
    """utils < models < converters < distill < engine / analysis / apis / deployment
    (tools above)."""
    modules = collect_modules()
    graph = {m: imports_of(m, p, modules) for m, p in modules.items()
             if m.startswith('mmdet_ksdetr.')}
    bad = upward_imports(graph)
    assert not bad, 'upward imports: ' + ', '.join(f'{a} -> {b}' for a, b in bad)
