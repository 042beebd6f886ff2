"""DAC-DETR decoders: an O-stream (the stock decoder) plus, in training, a C-stream that shares
cross-attention, norms and FFN but skips self-attention."""
from typing import Optional, Tuple

import torch
from mmdet.models.layers import (MLP, DeformableDetrTransformerDecoder,
                                 DeformableDetrTransformerDecoderLayer, DinoTransformerDecoder,
                                 coordinate_to_encoding, inverse_sigmoid)
from mmengine.model import ModuleList
from torch import Tensor, nn


class DACDeformableDetrTransformerDecoderLayer(DeformableDetrTransformerDecoderLayer):
    """Deformable-DETR decoder layer that can also run DAC-DETR's C-stream.

    ``forward`` is the stock layer (O-stream only, used at inference). ``forward_two_streams``
    runs, for O-stream state x and C-stream state y (both (bs, nq, dim)):

    - O: ``x = norms[0](x + SA(x))``, ``x = norms[1](x + CA(x, r_O))``, ``x = norms[2](x + FFN(x))``
    - C: ``y = norms[1](y + CA(y, r_C))``, ``y = norms[2](y + FFN(y))``; with
      ``c_from_self_attn`` y is first replaced by x after ``SA`` and ``norms[0]`` (the
      release's layer 0).

    Cross-attention, ``norms[1]``, FFN and ``norms[2]`` run once on the two streams concatenated
    along the query axis (exact: every query attends to the memory independently). When the
    C-stream starts from the self-attention output with the O-stream's references and
    ``query_pos`` its output equals the O-stream's and is computed once. No parameter is
    added.
    """

    def forward_two_streams(self,
                            query: Tensor,
                            query_c: Optional[Tensor],
                            query_pos: Tensor,
                            query_pos_c: Tensor,
                            value: Tensor,
                            key_padding_mask: Tensor,
                            reference_points: Tensor,
                            reference_points_c: Tensor,
                            spatial_shapes: Tensor,
                            level_start_index: Tensor,
                            valid_ratios: Tensor,
                            self_attn_mask: Optional[Tensor] = None,
                            c_from_self_attn: bool = False) -> Tuple[Tensor, Tensor]:
        """Returns the new (query, query_c), each (bs, nq, dim)."""
        query = self.self_attn(query=query, key=query, value=query, query_pos=query_pos,
                               key_pos=query_pos, attn_mask=self_attn_mask)
        query = self.norms[0](query)
        if c_from_self_attn:
            # the C-stream starts from this self-attention output with the same references
            # and query_pos, so its layer output is the O-stream's: compute it once
            if reference_points is not reference_points_c or query_pos is not query_pos_c:
                query_c = query
            else:
                query = self._cross_attn_ffn(query, query_pos, value, key_padding_mask,
                                             reference_points, spatial_shapes,
                                             level_start_index, valid_ratios)
                return query, query
        if query_c is None or query_c.shape != query.shape:
            raise ValueError('forward_two_streams: query_c must have the shape of query '
                             'unless c_from_self_attn=True')
        num_queries = query.shape[1]
        both = self._cross_attn_ffn(
            torch.cat([query, query_c], dim=1), torch.cat([query_pos, query_pos_c], dim=1),
            value, key_padding_mask,
            torch.cat([reference_points, reference_points_c], dim=1), spatial_shapes,
            level_start_index, valid_ratios)
        return both[:, :num_queries], both[:, num_queries:]

    def _cross_attn_ffn(self, query: Tensor, query_pos: Tensor, value: Tensor,
                        key_padding_mask: Tensor, reference_points: Tensor,
                        spatial_shapes: Tensor, level_start_index: Tensor,
                        valid_ratios: Tensor) -> Tensor:
        """The shared part of both streams: cross-attention, norms[1], FFN, norms[2]."""
        query = self.cross_attn(query=query, key=None, value=value, query_pos=query_pos,
                                key_padding_mask=key_padding_mask,
                                reference_points=reference_points, spatial_shapes=spatial_shapes,
                                level_start_index=level_start_index, valid_ratios=valid_ratios)
        query = self.norms[1](query)
        query = self.ffn(query)
        return self.norms[2](query)


class _DACDecoderMixin:
    """Shared pieces of the two DAC decoders."""

    def _init_dac_layers(self) -> None:
        self.layers = ModuleList([
            DACDeformableDetrTransformerDecoderLayer(**self.layer_cfg)
            for _ in range(self.num_layers)
        ])
        self.embed_dims = self.layers[0].embed_dims
        if self.post_norm_cfg is not None:
            raise ValueError(f'There is not post_norm in {self._get_name()}')
        if not self.return_intermediate:
            raise ValueError(f'{self._get_name()} needs return_intermediate=True: the C-stream '
                             'is supervised at every decoder layer')

    @staticmethod
    def _scale_reference(reference_points: Tensor, valid_ratios: Tensor) -> Tensor:
        """(bs, nq, 2|4) normalised references -> (bs, nq, num_levels, 2|4) per level."""
        if reference_points.shape[-1] == 4:
            return reference_points[:, :, None] * torch.cat([valid_ratios, valid_ratios],
                                                            -1)[:, None]
        return reference_points[:, :, None] * valid_ratios[:, None]

    @staticmethod
    def _refine(reference_points: Tensor, delta: Tensor, eps: float = 1e-5) -> Tensor:
        """Box refinement of Deformable DETR: sigmoid(delta + inverse_sigmoid(ref))."""
        if reference_points.shape[-1] == 4:
            return (delta + inverse_sigmoid(reference_points, eps)).sigmoid()
        new = delta.clone()
        new[..., :2] = delta[..., :2] + inverse_sigmoid(reference_points, eps)
        return new.sigmoid()


class DACDeformableDetrTransformerDecoder(_DACDecoderMixin, DeformableDetrTransformerDecoder):
    """Deformable-DETR decoder with DAC-DETR's C-stream (training only).

    Without ``with_c_stream`` the forward is the stock one. With it, both streams start from
    the same queries and references, share the fixed ``query_pos`` and every layer's
    cross-attention / norms / FFN, refine their own references with the shared
    ``reg_branches`` (detached between layers), and the C-stream skips self-attention (except
    that with ``share_first_self_attn`` its layer-0 input is the O-stream's self-attention
    output, as in the release).

    Args:
        share_first_self_attn (bool): reproduce the release's layer-0 sharing. Defaults to
            True.
        (the rest as :class:`DeformableDetrTransformerDecoder`; ``return_intermediate`` must
        be True.)

    Returns (with ``with_c_stream``): ``(hidden, refs, hidden_c, refs_c)`` with hidden
    (num_layers, bs, nq, dim) and refs (num_layers, bs, nq, 2|4), as the stock decoder.
    """

    def __init__(self, *args, share_first_self_attn: bool = True, **kwargs) -> None:
        self.share_first_self_attn = bool(share_first_self_attn)
        super().__init__(*args, **kwargs)

    def _init_layers(self) -> None:
        self._init_dac_layers()

    def forward(self,
                query: Tensor,
                query_pos: Tensor,
                value: Tensor,
                key_padding_mask: Tensor,
                reference_points: Tensor,
                spatial_shapes: Tensor,
                level_start_index: Tensor,
                valid_ratios: Tensor,
                reg_branches: Optional[nn.Module] = None,
                with_c_stream: bool = False,
                **kwargs) -> Tuple[Tensor, ...]:
        if not with_c_stream:
            return super().forward(query, query_pos, value, key_padding_mask, reference_points,
                                   spatial_shapes, level_start_index, valid_ratios,
                                   reg_branches, **kwargs)
        x = y = query
        ref_o = ref_c = reference_points
        hidden_o, hidden_c, refs_o, refs_c = [], [], [], []
        for lid, layer in enumerate(self.layers):
            ref_o_in = self._scale_reference(ref_o, valid_ratios)
            ref_c_in = ref_o_in if ref_c is ref_o else self._scale_reference(ref_c, valid_ratios)
            x, y = layer.forward_two_streams(
                x, y, query_pos, query_pos, value, key_padding_mask, ref_o_in, ref_c_in,
                spatial_shapes, level_start_index, valid_ratios,
                c_from_self_attn=(lid == 0 and self.share_first_self_attn))
            if reg_branches is not None:
                ref_o = self._refine(ref_o, reg_branches[lid](x)).detach()
                ref_c = self._refine(ref_c, reg_branches[lid](y)).detach()
            hidden_o.append(x)
            hidden_c.append(y)
            refs_o.append(ref_o)
            refs_c.append(ref_c)
        return (torch.stack(hidden_o), torch.stack(refs_o), torch.stack(hidden_c),
                torch.stack(refs_c))


class DACDinoTransformerDecoder(_DACDecoderMixin, DinoTransformerDecoder):
    """DINO decoder with DAC-DETR's C-stream (training only).

    As :class:`DACDeformableDetrTransformerDecoder`, with DINO's per-layer ``query_pos``: the
    C-stream computes its own ``query_pos`` from its references through the shared
    ``ref_point_head`` (the release keeps one fixed ``query_pos``), shares the final
    ``norm``, and keeps look-forward-twice (undetached new references are returned). The DN
    attention mask applies to the O-stream self-attention (and so to the shared layer 0).

    Returns (with ``with_c_stream``): ``(hidden, refs, hidden_c, refs_c)`` with hidden
    (num_layers, bs, nq, dim) and refs (num_layers + 1, bs, nq, 4), as the stock decoder.
    """

    def __init__(self, *args, share_first_self_attn: bool = True, **kwargs) -> None:
        self.share_first_self_attn = bool(share_first_self_attn)
        super().__init__(*args, **kwargs)

    def _init_layers(self) -> None:
        self._init_dac_layers()
        self.ref_point_head = MLP(self.embed_dims * 2, self.embed_dims, self.embed_dims, 2)
        self.norm = nn.LayerNorm(self.embed_dims)

    def forward(self,
                query: Tensor,
                value: Tensor,
                key_padding_mask: Tensor,
                self_attn_mask: Tensor,
                reference_points: Tensor,
                spatial_shapes: Tensor,
                level_start_index: Tensor,
                valid_ratios: Tensor,
                reg_branches: nn.ModuleList,
                with_c_stream: bool = False,
                **kwargs) -> Tuple[Tensor, ...]:
        if not with_c_stream:
            return super().forward(query, value, key_padding_mask, self_attn_mask,
                                   reference_points, spatial_shapes, level_start_index,
                                   valid_ratios, reg_branches, **kwargs)
        if reference_points.shape[-1] != 4 or reg_branches is None:
            raise ValueError('DACDinoTransformerDecoder needs 4-d reference boxes and '
                             'reg_branches (box refinement), as DINO')
        num_queries = query.shape[1]
        x = y = query
        ref_o = ref_c = reference_points
        hidden_o, hidden_c = [], []
        refs_o, refs_c = [reference_points], [reference_points]
        for lid, layer in enumerate(self.layers):
            ref_o_in = self._scale_reference(ref_o, valid_ratios)
            if ref_c is ref_o:  # layer 0: one set of references and query_pos for both
                ref_c_in = ref_o_in
                pos_o = pos_c = self.ref_point_head(coordinate_to_encoding(ref_o_in[:, :, 0]))
            else:
                ref_c_in = self._scale_reference(ref_c, valid_ratios)
                pos = self.ref_point_head(coordinate_to_encoding(
                    torch.cat([ref_o_in[:, :, 0], ref_c_in[:, :, 0]], 1)))
                pos_o, pos_c = pos[:, :num_queries], pos[:, num_queries:]
            x, y = layer.forward_two_streams(
                x, y, pos_o, pos_c, value, key_padding_mask, ref_o_in, ref_c_in,
                spatial_shapes, level_start_index, valid_ratios, self_attn_mask=self_attn_mask,
                c_from_self_attn=(lid == 0 and self.share_first_self_attn))
            new_o = (reg_branches[lid](x) + inverse_sigmoid(ref_o, eps=1e-3)).sigmoid()
            new_c = (reg_branches[lid](y) + inverse_sigmoid(ref_c, eps=1e-3)).sigmoid()
            ref_o, ref_c = new_o.detach(), new_c.detach()
            normed = self.norm(torch.cat([x, y], dim=1))
            hidden_o.append(normed[:, :num_queries])
            hidden_c.append(normed[:, num_queries:])
            refs_o.append(new_o)  # look forward twice: not detached
            refs_c.append(new_c)
        return (torch.stack(hidden_o), torch.stack(refs_o), torch.stack(hidden_c),
                torch.stack(refs_c))
