"""Occlusion explainers: ``--method grid`` and ``--method superpixel``.

Occlusion (Zeiler and Fergus, 2014, "Visualizing and Understanding Convolutional Networks"; with
superpixels as Captum's ``FeatureAblation`` does it): hide one region at a time, one forward pass
per region, and call a region as important as the explained tokens' score drops,
``score(I) - score(I with the region hidden)``, where ``score`` is the sum of their log-probabilities
(docs/method.md, 'Objective'). Regions are a label map on the work grid
(:mod:`lvlm_heat.methods.superpixels`); a hidden region is filled from a second image (the baseline
B, or one colour: the image's mean or median) through the adapter's own geometry, exactly as the mask's composites are. One
set of passes gives every token's drop, so per-word maps cost nothing more.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from lvlm_heat.adapters.base import Adapter
from lvlm_heat.baseline import flat_fill
from lvlm_heat.config import OcclusionConfig
from lvlm_heat.methods.superpixels import grid_labels, slic, work_image
from lvlm_heat.prepare import Prepared
from lvlm_heat.scorer import CompositeScorer


@torch.no_grad()
def occlusion_drops(scorer: CompositeScorer, labels: Tensor) -> Tensor:
    """Every answer token's log-probability drop when each region alone is hidden.

    Args:
        scorer: The pair's composites; its baseline is the fill.
        labels: ``(h, w)`` long region labels ``0 .. n - 1`` on the work grid over the whole image.

    Returns:
        ``(n, T)`` drops, ``log p(a_t | I) - log p(a_t | I with region r hidden)``; ``n + 1`` composites scored
        (the unoccluded image first, in the same batches).
    """
    device = scorer.adapter.device
    labels = labels.to(device)
    regions = int(labels.max()) + 1
    keep = (labels[None] != torch.arange(-1, regions, device=device)[:, None, None]).float()[:, None]
    scores = scorer.token_log_probs(keep)
    return scores[0] - scores[1:]


def occlusion_maps(adapter: Adapter, prepared: Prepared, kind: str, config: OcclusionConfig,
                   ) -> tuple[Tensor, int]:
    """Grid or superpixel occlusion maps of each of the pair's token groups.

    Args:
        adapter: The model.
        prepared: The pair (its groups of tokens, scorer and inputs).
        kind: ``grid`` or ``superpixel``.
        config: Regions and fill.

    Returns:
        ``(G, h, w)`` maps on the work grid (each pixel: the summed drop of the group's tokens when its region is
        hidden), and the composites scored.
    """
    image = prepared.query.image
    work = work_image(image)
    if kind == "grid":
        labels, fill = grid_labels(tuple(work.shape[1:]), config.grid), config.grid_fill
    else:
        labels, fill = slic(work, config.segments, config.compactness), config.superpixel_fill
    scorer = prepared.scorer
    if fill != "baseline":  # the same geometry, with the one-colour image as the second image
        inputs = adapter.prepare(image, flat_fill(image, fill), prepared.query.question, prepared.inputs.answer_ids)
        scorer = CompositeScorer(adapter, inputs, 1, prepared.scorer.batch_size)
    before = scorer.passes
    drops = occlusion_drops(scorer, labels)
    by_group = drops @ prepared.groups.float().T  # (n, G): the summed drop of each group's tokens
    return by_group[labels].permute(2, 0, 1).contiguous(), scorer.passes - before


def cell_means(saliency: Tensor, grid: tuple[int, int]) -> Tensor:
    """``(h, w)`` mean of a map ``(H, W)`` (any resolution spanning the image) over each mask cell.

    Example:
        >>> cell_means(torch.arange(16.0).view(4, 4), (2, 2)).tolist()
        [[2.5, 4.5], [10.5, 12.5]]
    """
    return F.adaptive_avg_pool2d(saliency.float()[None, None], grid)[0, 0]
