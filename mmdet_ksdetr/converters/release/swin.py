"""Swin Transformer of the releases -> mmdet's ``SwinTransformer``.

The releases' Swin is the official detection code's (SwinTransformer/
Swin-Transformer-Object-Detection), which detectron2's ``modeling/backbone/swin.py`` (the
backbone of the KS-DETR and detrex Swin configs) keeps with the same tensor names; DAC-DETR
uses the official code directly. Names, release -> mmdet:

* ``patch_embed.proj`` -> ``patch_embed.projection``; ``patch_embed.norm`` is the same;
* ``layers.<i>.blocks.<j>.``: ``norm1``, ``norm2`` the same; ``attn.*`` (``qkv``, ``proj``,
  ``relative_position_bias_table``, ``relative_position_index``) -> ``attn.w_msa.*``;
  ``mlp.fc1`` / ``mlp.fc2`` -> ``ffn.layers.0.0`` / ``ffn.layers.1``;
* ``layers.<i>.downsample.{reduction,norm}`` -> ``stages.<i>.downsample.*``, with the 4C
  channels reordered (:func:`unfold_order`);
* ``norm<i>`` (one LayerNorm per output stage) is the same.

The patch merging of the release concatenates the 2x2 neighbours as four blocks of C channels
in the order (row 0 col 0, row 1 col 0, row 0 col 1, row 1 col 1) (``x0 = x[:, 0::2, 0::2]``,
``x1 = x[:, 1::2, 0::2]``, ``x2 = x[:, 0::2, 1::2]``, ``x3 = x[:, 1::2, 1::2]``); mmdet's
``PatchMerging`` uses ``nn.Unfold``, which gives per channel the four neighbours in the order
(r0c0, r0c1, r1c0, r1c1). The reduction weight and the norm's weight and bias are permuted to
match. ``relative_position_index`` is a constant of the window size: checked where the
release has it, written where it has not. The absolute position embedding (``ape=True``) has
no mapping: mmdet adds it without the release's interpolation to the feature size.
"""
import inspect
import math
import re
from typing import Dict, Optional, Set, Tuple

import torch

__all__ = ['is_swin', 'swin_name', 'unfold_order', 'relative_position_index', 'convert_swin',
           'swin_settings', 'swin_config_mismatch']

#: block sub-module names, release -> mmdet
SWIN_BLOCK = {'norm1': 'norm1', 'norm2': 'norm2', 'attn': 'attn.w_msa',
              'mlp.fc1': 'ffn.layers.0.0', 'mlp.fc2': 'ffn.layers.1'}
_BLOCK = re.compile(r'layers\.(\d+)\.blocks\.(\d+)\.(norm1|norm2|attn|mlp\.fc1|mlp\.fc2)\.'
                    r'(weight|bias|qkv\.weight|qkv\.bias|proj\.weight|proj\.bias|'
                    r'relative_position_bias_table|relative_position_index)')
_DOWNSAMPLE = re.compile(r'layers\.(\d+)\.downsample\.((?:reduction|norm)\.(?:weight|bias))')
_OTHER = re.compile(r'(patch_embed\.(?:proj|norm)|norm\d+)\.(weight|bias)')


def is_swin(state: Dict[str, torch.Tensor], prefix: str = 'backbone.') -> bool:
    """Whether ``state`` holds a release Swin Transformer under ``prefix``."""
    return f'{prefix}patch_embed.proj.weight' in state


def swin_name(rest: str) -> Optional[str]:
    """The mmdet ``SwinTransformer`` name of one release Swin tensor name (without prefixes),
    or None where ``rest`` is not a Swin tensor name."""
    m = _BLOCK.fullmatch(rest)
    if m:
        layer, block, module, param = m.groups()
        if (module == 'attn') == (param in ('weight', 'bias')):
            return None  # attn has no weight of its own; norms and MLPs have only weight / bias
        return f'stages.{layer}.blocks.{block}.{SWIN_BLOCK[module]}.{param}'
    m = _DOWNSAMPLE.fullmatch(rest)
    if m:
        return f'stages.{m.group(1)}.downsample.{m.group(2)}'
    m = _OTHER.fullmatch(rest)
    if m:
        module = 'patch_embed.projection' if m.group(1) == 'patch_embed.proj' else m.group(1)
        return f'{module}.{m.group(2)}'
    return None


def unfold_order(t: torch.Tensor) -> torch.Tensor:
    """Patch merging: reorders the last dimension (4C) of a reduction weight or norm parameter
    from the release's four C-blocks (r0c0, r1c0, r0c1, r1c1) to ``nn.Unfold``'s per-channel
    (r0c0, r0c1, r1c0, r1c1)."""
    lead, c4 = t.shape[:-1], t.shape[-1]
    blocks = t.reshape(*lead, 4, c4 // 4)[..., [0, 2, 1, 3], :]
    return blocks.transpose(-1, -2).reshape(*lead, c4)


def relative_position_index(window: int) -> torch.Tensor:
    """The (window^2, window^2) index into the relative position bias table: for tokens
    (h1, w1), (h2, w2) of a window, ``(h1 - h2 + window - 1) * (2 * window - 1) + w1 - w2 +
    window - 1``."""
    h, w = torch.meshgrid(torch.arange(window), torch.arange(window), indexing='ij')
    h, w = h.flatten(), w.flatten()
    dh = h[:, None] - h[None, :] + window - 1
    dw = w[:, None] - w[None, :] + window - 1
    return dh * (2 * window - 1) + dw


def _window(table_rows: int) -> int:
    """The window size of a relative position bias table of ``(2w - 1)^2`` rows."""
    side = math.isqrt(table_rows)
    if side * side != table_rows or side % 2 == 0:
        raise KeyError(f'relative_position_bias_table with {table_rows} rows')
    return (side + 1) // 2


def convert_swin(state: Dict[str, torch.Tensor], src_prefix: str = 'backbone.',
                 dst_prefix: str = 'backbone.'
                 ) -> Tuple[Dict[str, torch.Tensor], Set[str]]:
    """Map every ``src_prefix`` Swin tensor of ``state`` to its mmdet name (patch merging
    reordered).

    Returns:
        tuple: ``(converted, consumed)``: the mmdet-named tensors and the source keys used.

    Raises:
        KeyError: a key under ``src_prefix`` that is not a release Swin tensor (its name
            without ``src_prefix``), or a relative position bias table that is not
            ``(2w - 1)^2`` rows.
        ValueError: a ``relative_position_index`` that is not the one of its window size.
    """
    converted, consumed = {}, set()
    for key, value in state.items():
        if not key.startswith(src_prefix):
            continue
        rest = key[len(src_prefix):]
        new = swin_name(rest)
        if new is None:
            raise KeyError(rest)
        if '.downsample.' in new:
            value = unfold_order(value)
        elif new.endswith('relative_position_index'):
            table = state.get(key[:-len('index')] + 'bias_table')
            window = None if table is None else _window(table.shape[0])
            if window is None or not torch.equal(value.long(),
                                                 relative_position_index(window)):
                raise ValueError(f'{key} is not the relative position index of its window '
                                 f'({window}x{window}): the checkpoint is damaged')
        converted[dst_prefix + new] = value
        consumed.add(key)
    for key in list(converted):  # a release saved without the (constant) index buffer
        if key.endswith('relative_position_bias_table'):
            index = key[:-len('bias_table')] + 'index'
            if index not in converted:
                converted[index] = relative_position_index(_window(converted[key].shape[0]))
    return converted, consumed


def swin_settings(state: Dict[str, torch.Tensor], prefix: str = 'backbone.') -> dict:
    """The mmdet ``SwinTransformer`` arguments the release tensors imply: ``embed_dims``,
    ``patch_size``, ``depths``, ``num_heads``, ``window_size``, ``mlp_ratio``, ``out_indices``,
    ``patch_norm``."""
    proj = state[f'{prefix}patch_embed.proj.weight']
    blocks: Dict[int, int] = {}
    for key in state:
        m = re.match(rf'{re.escape(prefix)}layers\.(\d+)\.blocks\.(\d+)\.', key)
        if m:
            layer, block = int(m.group(1)), int(m.group(2))
            blocks[layer] = max(blocks.get(layer, 0), block + 1)
    layers = range(max(blocks) + 1) if blocks else range(0)
    tables = [state[f'{prefix}layers.{i}.blocks.0.attn.relative_position_bias_table']
              for i in layers]
    fc1 = state.get(f'{prefix}layers.0.blocks.0.mlp.fc1.weight')
    return dict(
        embed_dims=int(proj.shape[0]), patch_size=int(proj.shape[-1]),
        depths=tuple(blocks.get(i, 0) for i in layers),
        num_heads=tuple(int(t.shape[1]) for t in tables),
        window_size=_window(tables[0].shape[0]) if tables else None,
        mlp_ratio=None if fc1 is None else fc1.shape[0] // fc1.shape[1],
        out_indices=tuple(i for i in layers if f'{prefix}norm{i}.weight' in state),
        patch_norm=f'{prefix}patch_embed.norm.weight' in state)


def swin_config_mismatch(state: Dict[str, torch.Tensor], backbone_cfg: dict,
                         prefix: str = 'backbone.') -> Optional[str]:
    """Where the config's ``SwinTransformer`` differs from the release tensors (one phrase), or
    None. Arguments the config leaves out take mmdet's defaults."""
    from mmdet.models.backbones import SwinTransformer
    defaults = {k: p.default for k, p in
                inspect.signature(SwinTransformer.__init__).parameters.items()}
    found = swin_settings(state, prefix)
    for name, value in found.items():
        want = backbone_cfg.get(name, defaults[name])
        if isinstance(want, (list, tuple)):
            want = tuple(want)
        if want != value:
            return (f'the checkpoint\'s Swin has {name}={value}, the config\'s backbone has '
                    f'{name}={want}')
    if backbone_cfg.get('use_abs_pos_embed', False):
        return 'the config\'s backbone has use_abs_pos_embed=True, the checkpoint has none'
    return None
