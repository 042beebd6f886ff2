"""House rules that a grep can check: the library and its tests never replace methods on
instances or classes (``object.__setattr__`` / ``__delattr__``) to capture data; they use
PyTorch module hooks or explicit methods."""
import os
import os.path as osp
import re

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
PACKAGE = osp.join(ROOT, 'mmdet_ksdetr')
TESTS = osp.join(ROOT, 'tests')
FORBIDDEN = re.compile(r'object\.__setattr__|__delattr__')


def _python_files(folder):
    for dirpath, _, files in os.walk(folder):
        for name in sorted(files):
            if name.endswith('.py'):
                yield osp.join(dirpath, name)


def offending_lines(folder, skip=()):
    """``path:line: text`` of every forbidden call under ``folder`` (files in ``skip`` aside)."""
    hits = []
    for path in _python_files(folder):
        if path in skip:
            continue
        with open(path, encoding='utf-8') as f:
            for number, line in enumerate(f, 1):
                if FORBIDDEN.search(line):
                    hits.append(f'{osp.relpath(path, ROOT)}:{number}: {line.strip()}')
    return hits


def test_no_method_replacement_in_the_library():
    hits = offending_lines(PACKAGE)
    assert not hits, ('replace methods with module hooks or explicit methods '
                      '(DESIGN rule 5):\n' + '\n'.join(hits))


def test_no_method_replacement_in_the_tests():
    """Tests count or capture calls with module hooks too (this file names the forbidden calls
    only as examples for the check)."""
    hits = offending_lines(TESTS, skip={osp.abspath(__file__)})
    assert not hits, ('use a forward hook (register_forward_hook / register_forward_pre_hook, '
                      'removed in finally) instead:\n' + '\n'.join(hits))


def test_the_check_finds_a_forbidden_call(tmp_path):
    (tmp_path / 'bad.py').write_text('object.__setattr__(m, "forward", f)\nx = 1\n'
                                     'object.__delattr__(m, "forward")\n')
    (tmp_path / 'good.py').write_text('m.register_forward_hook(f)\n')
    hits = offending_lines(str(tmp_path))
    assert [h.split(':')[1] for h in hits] == ['1', '3']
