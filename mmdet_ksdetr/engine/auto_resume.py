"""Choosing the checkpoint to resume from: the newest one in the work dir that actually loads.

``last_checkpoint`` (written by the checkpoint hook) names the newest checkpoint; after a crash
it can be empty, name a missing file, or name a file that a non-atomic writer left truncated.
:func:`find_resumable_checkpoint` tries that file first, then every ``epoch_N.pth`` /
``iter_N.pth`` (best checkpoints included) from the highest N down, and returns the first that
loads under ``weights_only`` with the keys a resume needs, plus a note per skipped file."""
import os
import os.path as osp
import re
from typing import List, Optional, Tuple

from mmdet_ksdetr.utils.checks import InputError, load_checkpoint_safely

_STEP = re.compile(r'(?:epoch|iter)_(\d+)\.pth$')


class NoUsableCheckpointError(InputError):
    """Auto-resume found checkpoints but none of them loads; the message lists why."""


def last_checkpoint_text(work_dir: str, checkpoint: str) -> str:
    """What ``last_checkpoint`` holds for ``checkpoint``: its path relative to ``work_dir``
    when it lies inside (a copied or moved work dir then resumes from its own files), else
    the absolute path."""
    rel = osp.relpath(osp.abspath(checkpoint), osp.abspath(work_dir))
    return rel if not rel.startswith(os.pardir) else osp.abspath(checkpoint)


def resolve_last_checkpoint(work_dir: str, text: str) -> str:
    """The checkpoint a ``last_checkpoint`` text names: a relative path is taken from
    ``work_dir``; an absolute one (older runs, mmengine) that points into another folder is
    replaced by the file of the same name in ``work_dir`` when there is one (a copied work
    dir resumes from its own copy, not from the original folder)."""
    if not osp.isabs(text):
        return osp.join(work_dir, text)
    local = osp.join(work_dir, osp.basename(text))
    if osp.realpath(osp.dirname(text)) != osp.realpath(work_dir) and osp.isfile(local):
        return local
    return text


def _last_checkpoint_target(work_dir: str, notes: List[str]) -> Optional[str]:
    marker = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(marker):
        return None
    with open(marker) as f:
        text = f.read().strip()
    if not text:
        notes.append(f'"{marker}" is empty')
        return None
    target = resolve_last_checkpoint(work_dir, text)
    if not osp.isfile(target):
        notes.append(f'"{marker}" names "{target}", which does not exist')
        return None
    return target


def checkpoint_candidates(work_dir: str, notes: List[str]) -> List[str]:
    """Checkpoint files to try, newest first: the ``last_checkpoint`` target, then
    ``*epoch_N.pth`` / ``*iter_N.pth`` in its folder and in ``work_dir`` by N (then mtime)."""
    first = _last_checkpoint_target(work_dir, notes)
    folders = {work_dir} | ({osp.dirname(first)} if first else set())
    found = []
    for folder in folders:
        for name in os.listdir(folder):
            match = _STEP.search(name)
            path = osp.join(folder, name)
            if match and not name.startswith('.') and osp.isfile(path):
                found.append((int(match.group(1)), osp.getmtime(path), path))
    ordered = [p for _, _, p in sorted(found, reverse=True)]
    if first:
        ordered = [first] + [p for p in ordered if osp.realpath(p) != osp.realpath(first)]
    return ordered


def partial_checkpoint_files(folder: str) -> List[str]:
    """Temporary files an interrupted atomic checkpoint save left in ``folder``."""
    return sorted(osp.join(folder, n) for n in os.listdir(folder)
                  if n.startswith('.') and n.endswith('.tmp') and '.pth.' in n)


def resume_problem(path: str) -> Optional[str]:
    """Why ``path`` cannot be resumed from (one line), or None when it can."""
    try:
        ckpt = load_checkpoint_safely(path)
    except InputError as e:
        return str(e)
    if not isinstance(ckpt, dict) or 'state_dict' not in ckpt or 'epoch' not in ckpt.get(
            'meta', {}):
        return f'"{path}" has no "state_dict" / "meta" with the epoch: not a training checkpoint'
    return None


def find_resumable_checkpoint(work_dir: str) -> Tuple[Optional[str], List[str]]:
    """``(path, notes)``: the newest loadable checkpoint in ``work_dir`` (None when the folder
    holds no checkpoint at all) and one line per file skipped and why. Raises
    :class:`NoUsableCheckpointError` when there are checkpoints but none loads."""
    notes: List[str] = []
    if not osp.isdir(work_dir):
        return None, notes
    candidates = checkpoint_candidates(work_dir, notes)
    for path in candidates:
        problem = resume_problem(path)
        if problem is None:
            return path, notes
        notes.append(f'skipped {problem}')
    if candidates:
        raise NoUsableCheckpointError(
            f'cannot resume: none of the {len(candidates)} checkpoint(s) in "{work_dir}" loads ('
            + '; '.join(notes) + '). Remove the broken files or give one with --resume CKPT')
    return None, notes


def newest_checkpoint(work_dir: str) -> Optional[str]:
    """The newest checkpoint file in ``work_dir`` (the ``last_checkpoint`` target, else the
    highest ``epoch_N`` / ``iter_N``), without loading it; None when there is none."""
    if not osp.isdir(work_dir):
        return None
    candidates = checkpoint_candidates(work_dir, [])
    return osp.abspath(candidates[0]) if candidates else None
