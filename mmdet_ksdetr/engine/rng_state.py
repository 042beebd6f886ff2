"""Random number generator state of every rank, as plain data that ``torch.load(weights_only=
True)`` reads back: python ``random``, numpy's global generator, torch CPU and every CUDA
device. A checkpoint that carries it lets a resumed run draw exactly the numbers the
uninterrupted run would have drawn (RandomFlip, dropout, DINO denoising queries, sampler and
dataloader-worker seeds)."""
import random
from typing import Dict, List

import numpy as np
import torch


def capture_rng_state() -> Dict:
    """This process's generator states: ``{'python', 'numpy', 'torch', 'cuda'}``."""
    version, internal, gauss = random.getstate()
    name, key, pos, has_gauss, cached = np.random.get_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return dict(python=[version, list(internal), gauss],
                numpy=[name, torch.from_numpy(key.astype(np.int64)), pos, has_gauss, cached],
                torch=torch.get_rng_state(), cuda=list(cuda))


def restore_rng_state(state: Dict) -> List[str]:
    """Set this process's generators from :func:`capture_rng_state` output; returns the names
    of the generators that could not be restored (e.g. CUDA states on a CPU-only machine)."""
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))
    name, key, pos, has_gauss, cached = state['numpy']
    np.random.set_state((name, key.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state['torch'])
    cuda = state.get('cuda') or []
    if not cuda:
        return []
    if not torch.cuda.is_available() or torch.cuda.device_count() != len(cuda):
        return ['cuda']
    torch.cuda.set_rng_state_all(cuda)
    return []


def gather_rng_states() -> List[Dict]:
    """Every rank's :func:`capture_rng_state`, in rank order (a collective: every rank calls)."""
    from mmengine.dist import all_gather_object, get_world_size
    state = capture_rng_state()
    if get_world_size() == 1:
        return [state]
    return all_gather_object(state)


def seed_worker_from_loader(worker_id: int, rank: int = 0) -> None:
    """``worker_init_fn`` for dataloader workers: seed ``random``, numpy and torch from the base
    seed torch draws from the main process's generator for each new iterator (so it follows the
    checkpointed state and changes every epoch), mixed with the rank (ranks share the seed)."""
    seed = (torch.initial_seed() + 1_000_003 * rank) % 2**32
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
