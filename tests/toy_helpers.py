"""Helpers for tests: toy configs, toy batches, running the repository tools."""
import os
import os.path as osp

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = osp.join(ROOT, 'configs')
TOOLS = osp.join(ROOT, 'tools')
# the opt-in slow tier: end-to-end runs whose mechanism a faster default test already covers
SLOW_TIER = os.environ.get('MMDET_KSDETR_SLOW') == '1'


def slow(reason):
    """``@slow('why')``: runs only with ``MMDET_KSDETR_SLOW=1`` (README "Test")."""
    import pytest
    return pytest.mark.skipif(not SLOW_TIER, reason=f'{reason}: set MMDET_KSDETR_SLOW=1')


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
    from mmdet_ksdetr.utils.data_root import apply_data_root
    return apply_data_root(cfg, data_root)


def toy_data_cfg_options(data_root):
    """``--cfg-options`` items that point a config's dataloaders and evaluators at
    ``data_root``: the command-line twin of :func:`set_toy_data_root`, for the tools."""
    return [f'data_root={data_root}']


def load_toy_config(rel_path, data_root=None, **overrides):
    """Load ``configs/<rel_path>``; with ``data_root`` point it at that toy set."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(CONFIGS, rel_path))
    if data_root is not None:
        set_toy_data_root(cfg, data_root)
    if overrides:
        cfg.merge_from_dict(overrides)
    return cfg


def toy_batch(cfg, data_root, split='train', n=2, seed=None):
    """``n`` samples of the toy set through the config's own pipeline, collated for
    ``model.data_preprocessor`` (inputs and data_samples). With ``seed`` the random parts of
    the pipeline (flip) are drawn after ``set_random_seed(seed)``: the same batch every run."""
    from mmdet.registry import DATASETS
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import init_default_scope
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    loader = cfg[f'{split}_dataloader'] if split != 'train' else cfg.train_dataloader
    ds_cfg = loader['dataset'].copy()
    if seed is not None:
        from mmengine.runner import set_random_seed
        set_random_seed(seed)
    ds = DATASETS.build(ds_cfg)
    return pseudo_collate([ds[i] for i in range(n)])


TOY_CLASSES = ('square', 'disk', 'triangle')


def build_toy_model(cfg, seed=0, quiet=True, dtype=None, model=None):
    """Build ``cfg.model`` reproducibly, as mmengine's Runner does: mmdet as default scope,
    ``torch.manual_seed(seed)`` right before the build (so equal seeds give equal weights),
    mmrazor's registry for a distiller (``_scope_='mmrazor'``) else mmdet's, the current
    logger at WARNING (init_weights' long report), then ``init_weights()``. With ``quiet``
    build-time warnings (a distiller without ``teacher_ckpt``) are silenced; pass
    ``quiet=False`` to see (or assert) them. With ``dtype`` (``torch.float64``) the build and
    ``init_weights()`` run with it as the default dtype (every draw made in it) and the model
    is then cast to it (some ``init_weights`` assign float32 tensors they make themselves).
    ``model``: a model config to build instead of ``cfg.model`` (a distiller's teacher).
    Returns the model."""
    import warnings

    import torch
    from mmengine.logging import MMLogger
    from mmengine.registry import init_default_scope
    model_cfg = cfg.model if model is None else model
    init_default_scope('mmdet')
    if model_cfg.get('_scope_') == 'mmrazor':
        from mmrazor.registry import MODELS
    else:
        from mmdet.registry import MODELS
    torch.manual_seed(seed)
    default_dtype = torch.get_default_dtype()
    if dtype is not None:
        torch.set_default_dtype(dtype)
    try:
        with warnings.catch_warnings():
            if quiet:
                warnings.simplefilter('ignore')
            built = MODELS.build(model_cfg)
        MMLogger.get_current_instance().setLevel('WARNING')
        built.init_weights()
        if dtype is not None:
            built.to(dtype)
    finally:
        torch.set_default_dtype(default_dtype)
    return built


def toy_config(rel_path, data_root=None, same_student=False, replace=False, **model):
    """:func:`load_toy_config` with keys of its ``model`` set. They merge into the config as
    ``--cfg-options model.KEY=...`` does (``decoder=dict(num_layers=6)`` changes one key of the
    decoder); with ``replace`` each value replaces the key whole (``cfg.model.update``). With
    ``same_student`` a distiller's student (``architecture``) is first set to a copy of its
    teacher. A distiller with a random teacher: ``teacher_ckpt=None``."""
    import copy
    cfg = load_toy_config(rel_path, data_root)
    if same_student:
        cfg.model.architecture = copy.deepcopy(cfg.model.teacher)
    if replace:
        cfg.model.update(model)
    elif model:
        cfg.merge_from_dict({f'model.{k}': v for k, v in model.items()})
    return cfg


def build_toy(rel_path, data_root=None, seed=0, quiet=True, same_student=False, replace=False,
              **model):
    """:func:`toy_config` then :func:`build_toy_model` (``seed``, ``quiet``): the toy model of
    ``configs/<rel_path>`` with keys of its ``model`` set. Returns ``(cfg, model)``."""
    cfg = toy_config(rel_path, data_root, same_student, replace, **model)
    return cfg, build_toy_model(cfg, seed, quiet)


def toy_inputs(model, cfg, data_root, split='train', n=2, seed=None):
    """:func:`toy_batch` (``split``, ``n``, ``seed``) through ``model.data_preprocessor``, in
    training mode for the train split: ``dict(inputs=..., data_samples=...)``."""
    return model.data_preprocessor(toy_batch(cfg, data_root, split, n, seed), split == 'train')


def save_random_checkpoint(rel_cfg, path, seed=0):
    """Build the model of ``configs/<rel_cfg>`` (an mmdet detector or an mmrazor distiller,
    whose teacher is left random) with :func:`build_toy_model` and save it as a checkpoint
    with the toy classes in ``meta.dataset_meta``, as mmdet's tools expect. Returns ``path``."""
    import torch
    cfg = load_toy_config(rel_cfg)
    if cfg.model.get('_scope_') == 'mmrazor':
        cfg.model.teacher_ckpt = None
    model = build_toy_model(cfg, seed)
    meta = dict(dataset_meta=dict(classes=TOY_CLASSES))
    torch.save(dict(meta=meta, state_dict=model.state_dict()), path)
    return path


def predict_both(model, other, batch):
    """Put ``model`` and ``other`` in ``eval()`` and let each predict ``batch`` through its own
    data preprocessor, without gradients: the two lists of data samples, to compare."""
    import torch
    results = []
    for m in (model, other):
        m.eval()
        with torch.no_grad():
            data = m.data_preprocessor(batch, False)
            results.append(m.predict(data['inputs'], data['data_samples']))
    return results


def assert_same_detections(got, want, num=None, atol=1e-5):
    """Two lists of predicted data samples agree image by image: boxes and scores within
    ``atol`` (0: bit-identical), the same labels, and with ``num`` that many detections."""
    import torch
    assert len(got) == len(want)
    for a, b in zip(got, want):
        a, b = a.pred_instances, b.pred_instances
        if num is not None:
            assert len(a) == len(b) == num
        torch.testing.assert_close(a.bboxes, b.bboxes, atol=atol, rtol=0)
        torch.testing.assert_close(a.scores, b.scores, atol=atol, rtol=0)
        assert torch.equal(a.labels, b.labels)


def run_tool(args, cwd=ROOT, env=None, timeout=900):
    """Run a repository tool as a user would; returns the CompletedProcess (text)."""
    import subprocess
    full_env = dict(os.environ)
    full_env.setdefault('OMP_NUM_THREADS', '1')
    if env:
        full_env.update(env)
    return subprocess.run(args, cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=timeout)


def distill_train_transfer_test(cfg_path, teacher, student_cfg, data_root, tmp_path,
                                test_options=()):
    """A distillation as a user runs it on the toy set: ``teacher`` (a built model) saved as the
    teacher checkpoint, ``tools/dist_train.sh cfg_path 2`` (2 gloo CPU processes, 1 epoch,
    validated), ``tools/pth_transfer.py`` on its checkpoint, ``tools/test.py student_cfg`` on
    the student (``test_options`` go to its ``--cfg-options``). Asserts that each tool
    succeeds and that the test prints a bbox mAP; returns (training log, student state dict)."""
    import re

    import torch
    t_ckpt = str(tmp_path / 'teacher.pth')
    torch.save(dict(meta=dict(epoch=12), state_dict=teacher.state_dict()), t_ckpt)
    work = str(tmp_path / 'work')
    opts = toy_data_cfg_options(data_root)
    res = run_tool(['bash', 'tools/dist_train.sh', cfg_path, '2', '--work-dir', work,
                    '--cfg-options', f'model.teacher_ckpt={t_ckpt}', 'train_cfg.max_epochs=1',
                    'train_cfg.val_interval=1'] + opts,
                   env=dict(PORT=str(free_port()), OMP_NUM_THREADS='1'))
    log = res.stdout + res.stderr
    assert res.returncode == 0, log[-4000:]
    assert 'coco/bbox_mAP' in log

    student_ckpt = str(tmp_path / 'student.pth')
    res = run_tool(['python', 'tools/pth_transfer.py', '--ckpt_path',
                    osp.join(work, 'epoch_1.pth'), '--output_path', student_ckpt])
    assert res.returncode == 0, res.stderr[-3000:]
    state = torch.load(student_ckpt, weights_only=True)['state_dict']
    assert state and not any(k.startswith(('teacher', 'architecture', 'distiller'))
                             for k in state)

    res = run_tool(['python', 'tools/test.py', student_cfg, student_ckpt, '--work-dir',
                    str(tmp_path / 'test'), '--cfg-options', *test_options, *opts])
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    assert re.search(r'coco/bbox_mAP: \d', res.stdout + res.stderr)
    return log, state


def free_port():
    """A free TCP port on localhost for a torch.distributed rendezvous."""
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def disable_dropout(module):
    """Set every dropout of ``module`` to 0 (nn.Dropout and nn.MultiheadAttention's own), so
    two computations that differ only in their random draws can be compared exactly."""
    import torch
    for m in module.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
        if isinstance(m, torch.nn.MultiheadAttention):
            m.dropout = 0.0
    return module


def perturb_parameters(module, seed, std=0.05):
    """Add seeded N(0, std^2) noise to every parameter of ``module`` (in place; returns it).

    mmdet zero-initialises the last box layer of DETR heads, so freshly built models predict
    their reference points as boxes: a student decoding the teacher's queries (or the same
    random queries) then predicts exactly the teacher's boxes, and every L1 term sits at its
    kink |0|, where one ulp of round-off flips the gradient sign(0) from 0 to +-1. Noise on
    every parameter moves such comparisons off the kink."""
    import torch
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g).to(p) * std)
    return module


def write_toy_retinanet_config(folder):
    """A small RetinaNet on the toy backbone and the toy data (a detector that is not a DETR,
    for the tools' refusals); returns the config path."""
    path = osp.join(str(folder), 'retinanet_toy.py')
    with open(path, 'w') as f:
        f.write(
            f"_base_ = ['mmdet::retinanet/retinanet_r18_fpn_1x_coco.py',\n"
            f"          '{CONFIGS}/_base_/datasets/toy_coco.py', '{CONFIGS}/_base_/toy_tiny.py']\n"
            "data_root = _base_.toy_data_root\n"
            "val_dataloader = _base_.toy_val_dataloader\n"
            "test_dataloader = _base_.toy_test_dataloader\n"
            "model = dict(backbone=_base_.toy_backbone_c3_c5,\n"
            "             neck=dict(in_channels=_base_.toy_backbone_c3_c5_channels,\n"
            "                       start_level=0, out_channels=32),\n"
            "             bbox_head=dict(num_classes=3, in_channels=32, feat_channels=32))\n")
    return path


# --- release checkpoints (tests/converters) ---
_MMDET2_T = 'bbox_head.transformer.'


def to_mmdet2_name(key):
    """The mmdet 2.x (DETRDistill release) name of an mmdet 3.x Deformable DETR key."""
    for part in ('encoder', 'decoder'):
        if key.startswith(f'{part}.layers.'):
            i, rest = key[len(f'{part}.layers.'):].split('.', 1)
            for new, old in (('self_attn.', 'attentions.0.'), ('cross_attn.', 'attentions.1.'),
                             ('ffn.', 'ffns.0.'), ('norms.', 'norms.')):
                if rest.startswith(new):
                    return f'{_MMDET2_T}{part}.layers.{i}.{old}{rest[len(new):]}'
    for new, old in (('level_embed', _MMDET2_T + 'level_embeds'),
                     ('reference_points_fc.', _MMDET2_T + 'reference_points.'),
                     ('query_embedding.', 'bbox_head.query_embedding.')):
        if key.startswith(new):
            return old + key[len(new):]
    return key


def save_toy_mmdet2_release(path, seed=0):
    """A toy Deformable DETR (random weights, ``seed``) saved as the DETRDistill release saves
    its models (mmdet 2.x names, ``meta`` + ``state_dict``). Returns (path, mmdet 3.x model)."""
    import torch
    model = build_toy_model(load_toy_config(TOY_DETRS['deformable']), seed=seed)
    state = {to_mmdet2_name(k): v.clone() for k, v in model.state_dict().items()}
    torch.save(dict(meta=dict(epoch=50, mmdet_version='2.19.0'), state_dict=state), str(path))
    return str(path), model


def work_dir_log(work_dir):
    """The text of every mmengine log file under ``work_dir`` (the environment and config dumps
    go there; the console shows them only with ``--verbose``)."""
    import glob
    return ''.join(open(p).read() for p in sorted(glob.glob(
        osp.join(str(work_dir), '**', '*.log'), recursive=True)))
