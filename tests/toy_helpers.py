"""Helpers for tests: toy configs, toy batches, running the repository tools."""
import os
import os.path as osp

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = osp.join(ROOT, 'configs')
TOOLS = osp.join(ROOT, 'tools')

# the five stock mmdet DETR variants as toy configs (relative to configs/)
TOY_DETRS = {
    'detr': 'toy/detr_tiny-r18_1xb2-12e_toy.py',
    'conditional': 'toy/conditional-detr_tiny-r18_1xb2-12e_toy.py',
    'dab': 'toy/dab-detr_tiny-r18_1xb2-12e_toy.py',
    'deformable': 'toy/deformable-detr_tiny-r18_1xb2-12e_toy.py',
    'dino': 'toy/dino-4scale_tiny-r18_1xb2-12e_toy.py',
}


def set_toy_data_root(cfg, data_root):
    """Point every dataloader and evaluator of a (toy) config at ``data_root``."""
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(name)
        if loader and 'dataset' in loader:
            ds = loader['dataset']
            while 'dataset' in ds:
                ds = ds['dataset']
            ds['data_root'] = data_root
    for name in ('val_evaluator', 'test_evaluator'):
        ev = cfg.get(name)
        if ev and 'ann_file' in ev:
            ev['ann_file'] = osp.join(data_root, 'annotations', osp.basename(ev['ann_file']))
    return cfg


def toy_data_cfg_options(data_root):
    """``--cfg-options`` items that point a toy config's dataloaders and evaluators at
    ``data_root``: the command-line twin of :func:`set_toy_data_root`, for the tools."""
    ann = osp.join(data_root, 'annotations', 'instances_val.json')
    return ([f'{d}.dataset.data_root={data_root}'
             for d in ('train_dataloader', 'val_dataloader', 'test_dataloader')] +
            [f'{e}.ann_file={ann}' for e in ('val_evaluator', 'test_evaluator')])


def load_toy_config(rel_path, data_root=None, **overrides):
    """Load ``configs/<rel_path>``; with ``data_root`` point it at that toy set."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(CONFIGS, rel_path))
    if data_root is not None:
        set_toy_data_root(cfg, data_root)
    if overrides:
        cfg.merge_from_dict(overrides)
    return cfg


def toy_batch(cfg, data_root, split='train', n=2):
    """``n`` samples of the toy set through the config's own pipeline, collated for
    ``model.data_preprocessor`` (inputs and data_samples)."""
    from mmdet.registry import DATASETS
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import init_default_scope
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    loader = cfg[f'{split}_dataloader'] if split != 'train' else cfg.train_dataloader
    ds_cfg = loader['dataset'].copy()
    ds = DATASETS.build(ds_cfg)
    return pseudo_collate([ds[i] for i in range(n)])


def run_tool(args, cwd=ROOT, env=None, timeout=900):
    """Run a repository tool as a user would; returns the CompletedProcess (text)."""
    import subprocess
    full_env = dict(os.environ)
    full_env.setdefault('OMP_NUM_THREADS', '1')
    if env:
        full_env.update(env)
    return subprocess.run(args, cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=timeout)


def free_port():
    """A free TCP port on localhost for a torch.distributed rendezvous."""
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]
