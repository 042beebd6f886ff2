"""DN-DETR denoising queries, on top of mmdet's DINO ``CdnQueryGenerator``.

DN-DETR (Li et al., CVPR 2022) feeds the decoder noised copies of the GT boxes and labels and
trains it to reconstruct them. Unlike DINO's contrastive denoising there are no negative
copies: ``num_groups`` groups of one noised copy of every GT box. The interface and layout are
those of mmdet's ``CdnQueryGenerator``, so DINO's ``dn_meta`` / DN-loss code applies as is:

* queries: ``(B, max_gt * num_groups, C)`` label queries and ``(B, max_gt * num_groups, 4)``
  inverse-sigmoid box queries, group-major, each image's GTs padded to ``max_gt``;
* ``attn_mask``: ``(Q_dn + Q, Q_dn + Q)`` bool, True = cannot see: matching queries cannot see
  DN queries and DN groups cannot see each other;
* ``dn_meta = dict(num_denoising_queries=max_gt * num_groups, num_denoising_groups=num_groups)``.

Noise (DN-DETR): each label is replaced by a random class with probability
``label_noise_scale``; box centres move by up to ``box_noise_scale * w/2, h/2`` and sizes are
scaled by up to ``1 +- box_noise_scale`` (uniform), then clipped to [0, 1]. With
``with_indicator`` the label embedding has ``C - 1`` channels plus an indicator channel (1 for
DN queries, 0 for matching queries), and the label table has one extra "no object" row whose
embedding is the content query of the matching part.
"""
from typing import Tuple

import torch
from mmdet.models.layers.transformer import CdnQueryGenerator, inverse_sigmoid
from mmdet.structures import SampleList
from mmdet.structures.bbox import bbox_xyxy_to_cxcywh
from torch import Tensor, nn

__all__ = ['DnQueryGenerator']


class DnQueryGenerator(CdnQueryGenerator):
    """DN-DETR denoising query generator (no negatives, optional indicator channel).

    Args:
        num_classes (int), embed_dims (int), num_matching_queries (int): as in
            ``CdnQueryGenerator`` (set by the detector).
        label_noise_scale (float): probability of replacing a label. Defaults to 0.2.
        box_noise_scale (float): box noise scale. Defaults to 0.4.
        group_cfg (dict): as ``CdnQueryGenerator``; DN-DETR uses static groups
            ``dict(dynamic=False, num_groups=5)`` (the default here).
        with_indicator (bool): add the DN / matching indicator channel. Defaults to True.
    """

    def __init__(self,
                 num_classes: int,
                 embed_dims: int,
                 num_matching_queries: int,
                 label_noise_scale: float = 0.2,
                 box_noise_scale: float = 0.4,
                 group_cfg: dict = None,
                 with_indicator: bool = True) -> None:
        if group_cfg is None:
            group_cfg = dict(dynamic=False, num_groups=5)
        super().__init__(num_classes, embed_dims, num_matching_queries, label_noise_scale,
                         box_noise_scale, group_cfg)
        self.with_indicator = with_indicator
        # one extra row: "no object", the content of the matching queries
        self.label_embedding = nn.Embedding(num_classes + 1, embed_dims - int(with_indicator))

    def _embed(self, labels: Tensor, indicator: float) -> Tensor:
        emb = self.label_embedding(labels)
        if self.with_indicator:
            emb = torch.cat([emb, emb.new_full((*emb.shape[:-1], 1), indicator)], -1)
        return emb

    def matching_label_query(self, batch_size: int) -> Tensor:
        """Content queries of the matching part: the "no object" embedding (indicator 0),
        ``(batch_size, num_matching_queries, embed_dims)``."""
        no_object = self.label_embedding.weight.new_full((1, ), self.num_classes,
                                                         dtype=torch.long)
        emb = self._embed(no_object, 0.)
        return emb.expand(batch_size, self.num_matching_queries, -1)

    def __call__(self, batch_data_samples: SampleList) -> Tuple[Tensor, Tensor, Tensor, dict]:
        labels, boxes, batch_idx = [], [], []
        for i, sample in enumerate(batch_data_samples):
            img_h, img_w = sample.img_shape
            b = sample.gt_instances.bboxes
            b = b.tensor if hasattr(b, 'tensor') else b
            boxes.append(bbox_xyxy_to_cxcywh(b / b.new_tensor([img_w, img_h, img_w, img_h])))
            labels.append(sample.gt_instances.labels)
            batch_idx.append(torch.full_like(labels[-1], i))
        counts = [len(x) for x in labels]
        max_gt = max(counts)
        num_groups = self.get_num_groups(max_gt)
        device = self.label_embedding.weight.device
        labels, boxes, batch_idx = (torch.cat(labels), torch.cat(boxes).to(device),
                                    torch.cat(batch_idx))
        # num_groups noised copies of every GT, group-major
        label_query = self._embed(self.noised_labels(labels, num_groups), 1.)
        bbox_query = self.noised_box_queries(boxes, num_groups)
        # slot of each copy: group * max_gt + index of the GT inside its image
        index_in_image = torch.cat([torch.arange(n, device=device) for n in counts])
        slot = (index_in_image[None] + max_gt * torch.arange(num_groups, device=device)[:, None])
        rows = batch_idx.to(device).repeat(num_groups)
        num_dn = max_gt * num_groups
        batched_label = label_query.new_zeros(len(batch_data_samples), num_dn, self.embed_dims)
        batched_bbox = bbox_query.new_zeros(len(batch_data_samples), num_dn, 4)
        batched_label[rows, slot.flatten()] = label_query
        batched_bbox[rows, slot.flatten()] = bbox_query
        attn_mask = self.generate_dn_mask(max_gt, num_groups, device)
        dn_meta = dict(num_denoising_queries=int(num_dn), num_denoising_groups=num_groups)
        return batched_label, batched_bbox, attn_mask, dn_meta

    def noised_labels(self, gt_labels: Tensor, num_groups: int) -> Tensor:
        """Noised labels (not embedded), ``(num_groups * num_gt, )``: each replaced by a random
        class (the "no object" class included, as in DN-DETR) with probability
        ``label_noise_scale``."""
        labels = gt_labels.repeat(num_groups)
        if self.label_noise_scale > 0:
            replace = torch.rand_like(labels.float()) < self.label_noise_scale
            random = torch.randint_like(labels, 0, self.num_classes + 1)
            labels = torch.where(replace, random, labels)
        return labels

    def noised_box_queries(self, gt_bboxes: Tensor, num_groups: int) -> Tensor:
        """Noised boxes as inverse-sigmoid ``(cx, cy, w, h)``, ``(num_groups * num_gt, 4)``;
        ``gt_bboxes`` are normalised ``(cx, cy, w, h)``."""
        boxes = gt_bboxes.repeat(num_groups, 1)
        if self.box_noise_scale > 0:
            diff = torch.cat([boxes[:, 2:] / 2, boxes[:, 2:]], 1)
            boxes = boxes + (torch.rand_like(boxes) * 2 - 1) * diff * self.box_noise_scale
            boxes = boxes.clamp(min=0.0, max=1.0)
        return inverse_sigmoid(boxes, eps=1e-3)

    def generate_dn_mask(self, max_num_target: int, num_groups: int, device) -> Tensor:
        """(Q_dn + Q, Q_dn + Q) bool, True = masked (see module docstring)."""
        num_dn = max_num_target * num_groups
        total = num_dn + self.num_matching_queries
        group = torch.arange(total, device=device) // max(max_num_target, 1)
        is_dn = torch.arange(total, device=device) < num_dn
        # DN query i may see DN query j only inside its group; everyone may see the matching
        # part; the matching part sees no DN query
        mask = is_dn[None, :] & ~(is_dn[:, None] & (group[:, None] == group[None, :]))
        return mask
