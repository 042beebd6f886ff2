"""README.md, docs/*.md and CHANGELOG.md speak to users about the product as it is: no
development history (earlier runs, CI commands, internal targets, "not measured yet", one-release
notes, old folders), no pointers to internal specs or design rules, and a GPU column nobody
measured is "—" with its footnote. The README's "Install" and "Test" sections are checked by
the tests of the install tooling."""
import glob
import os.path as osp
import re

from toy_helpers import ROOT

HISTORY = ['not measured yet', 'an earlier run', 'CI=true', '.ci/run', 'kept for one release',
           'for one release', 'old `tprd/`', 'config folder is split', 'no longer',
           'has been available to this project', 'DESIGN rule', 'specs/', '§']
OTHERS_SECTIONS = ('## Install', '## Test')


def _readme_without_others_sections():
    text, keep = [], True
    with open(osp.join(ROOT, 'README.md'), encoding='utf-8') as f:
        for line in f:
            if line.startswith('## '):
                keep = not line.strip() in OTHERS_SECTIONS
            if keep:
                text.append(line)
    return ''.join(text)


def _user_docs():
    docs = {'README.md': _readme_without_others_sections()}
    for path in sorted(glob.glob(osp.join(ROOT, 'docs', '*.md'))) + [
            osp.join(ROOT, 'CHANGELOG.md')]:
        with open(path, encoding='utf-8') as f:
            docs[osp.relpath(path, ROOT)] = f.read()
    return docs


def test_no_development_history_in_user_docs():
    hits = [f'{name}:{n}: {phrase!r}' for name, text in _user_docs().items()
            for n, line in enumerate(text.splitlines(), 1) for phrase in HISTORY
            if phrase in line]
    hits += [f'{name}:{n}: "spec"' for name, text in _user_docs().items()
             for n, line in enumerate(text.splitlines(), 1)
             if re.search(r'\bspecs?\b', line)]
    assert not hits, 'user docs carry development history:\n' + '\n'.join(hits)


def test_no_internal_target_columns():
    for name, text in _user_docs().items():
        for line in text.splitlines():
            if line.startswith('|'):
                cells = [c.strip().lower() for c in line.strip('|').split('|')]
                assert 'target' not in cells, f'{name}: table with a "target" column: {line}'


def test_unmeasured_gpu_cells_are_dashes_with_one_footnote():
    for name, text in _user_docs().items():
        lines = text.splitlines()
        for n, line in enumerate(lines):
            if line.startswith('|') and 'gpu' in line.lower() and n + 1 < len(lines) and \
                    lines[n + 1].startswith('|---'):
                end = n + 2
                while end < len(lines) and lines[end].startswith('|'):
                    end += 1
                rows = lines[n + 2:end]
                if any(r.rstrip().endswith('| — |') for r in rows):
                    assert line.rstrip().endswith('¹ |'), f'{name}: {line}'
                    assert lines[end + 1].startswith('¹ No GPU measurement is published yet'), \
                        f'{name}: the table at line {n + 1} lacks its footnote'
