"""Reference explainers by occlusion, and the metrics every explainer of the sanity check is scored with.

Occlusion (Zeiler and Fergus, 2014, "Visualizing and Understanding Convolutional Networks"; with
superpixels as Captum's ``FeatureAblation`` does it): hide one region at a time, one forward pass
per region, and call a region as important as the selected answer tokens' score drops,
``score(I) - score(I with the region hidden)``, where ``score`` is the sum of their log-probabilities
(docs/method.md, 'Objective'). Regions are a label map on the work grid
(:mod:`lvlm_heat.sanity.superpixels`); a hidden region is filled from a second image (the baseline
B, or a flat colour) through the adapter's own geometry, exactly as the mask's composites are.

:func:`map_metrics` scores any map with the explainer's own curve machinery: the map is averaged
over each cell of the explainer's mask grid, the cells are ranked by that value and
:meth:`CompositeScorer.curves <lvlm_heat.scorer.CompositeScorer.curves>` draws the deletion and insertion
curves; the pointing game and box mass use :func:`~lvlm_heat.metrics.pointing_hit` and
:func:`~lvlm_heat.metrics.box_mass`, whose peak (:func:`~lvlm_heat.metrics.peak`) breaks ties at a map's
maximum at their centre for every explainer alike.
So an occlusion map and the optimised mask are compared with the same numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from lvlm_heat.data.pairs import Box
from lvlm_heat.geometry import upsample_to_image
from lvlm_heat.metrics import box_mass, peak, pointing_hit
from lvlm_heat.metrics.curves import Curve
from lvlm_heat.scorer import CompositeScorer


class CountingAdapter:
    """An adapter that counts the composites its model scores (``answer_log_probs`` rows).

    Everything else is the wrapped adapter's, so it goes wherever an adapter goes.
    """

    def __init__(self, adapter: Any) -> None:
        self.inner, self.passes = adapter, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def answer_log_probs(self, prepared, pixels: dict[str, Tensor]) -> Tensor:
        self.passes += next(iter(pixels.values())).shape[0]
        return self.inner.answer_log_probs(prepared, pixels)


def flat_fill(image: Image.Image) -> Image.Image:
    """The image's mean colour everywhere: a flat fill that removes shapes and colours alike."""
    mean = np.asarray(image.convert("RGB"), dtype=np.float64).reshape(-1, 3).mean(0)
    return Image.new("RGB", image.size, tuple(round(float(v)) for v in mean))


@torch.no_grad()
def occlusion_map(scorer: CompositeScorer, labels: Tensor, tokens: Tensor) -> Tensor:
    """Saliency of every region: the drop of the explained tokens' score when it alone is hidden.

    Args:
        scorer: The pair's composites; its baseline is the fill.
        labels: ``(h, w)`` long region labels ``0 .. n - 1`` on the work grid over the whole image.
        tokens: ``(T,)`` bool, the explained tokens.

    Returns:
        ``(h, w)`` float map on the work grid, each pixel the drop of its region; ``n + 1`` composites
        scored (the unoccluded image first, in the same batches).
    """
    device = scorer.adapter.device
    labels = labels.to(device)
    regions = int(labels.max()) + 1
    keep = (labels[None] != torch.arange(-1, regions, device=device)[:, None, None]).float()[:, None]
    scores = scorer.token_log_probs(keep)[:, tokens.cpu()].sum(-1)
    return (scores[0] - scores[1:])[labels.cpu()]


def cell_means(saliency: Tensor, grid: tuple[int, int]) -> Tensor:
    """``(h, w)`` mean of a map ``(H, W)`` (any resolution spanning the image) over each mask cell.

    Example:
        >>> cell_means(torch.arange(16.0).view(4, 4), (2, 2)).tolist()
        [[2.5, 4.5], [10.5, 12.5]]
    """
    return F.adaptive_avg_pool2d(saliency.float()[None, None], grid)[0, 0]


def image_map(work_map: Tensor, image_size: tuple[int, int]) -> np.ndarray:
    """A work-grid map over the original image ``(H, W)``, float32, read bilinearly as the mask is."""
    return upsample_to_image(work_map.float()[None, None], image_size)[0, 0].numpy().astype(np.float32)


def map_metrics(saliency: np.ndarray, bbox: Box | None, steps: int, margin: float,
                scored: tuple[CompositeScorer, Tensor, float, float] | None = None,
                curves: tuple[Curve, Curve] | None = None) -> dict[str, Any]:
    """Pointing game, box mass, deletion and insertion AUC of one map.

    Args:
        saliency: ``(H, W)`` over the original image, higher = more important.
        bbox: The evidence box, if the dataset gives one.
        steps: Curve steps ``K``.
        margin: How far a normalised curve may leave [0, 1] before the map is flagged ``curve_out_of_range``.
        scored: What the curves are drawn with: the scorer (against the pair's baseline B), the explained tokens
            and their mean probability on I and on B (``None`` when ``curves`` are given).
        curves: Deletion and insertion curves already drawn over the mask grid (the optimised mask's own);
            drawn here otherwise.

    Returns:
        ``peak`` (:func:`~lvlm_heat.metrics.peak`), ``pointing_hit`` and ``box_mass`` (``None`` without a box),
        ``deletion_auc``, ``insertion_auc``, ``curve_out_of_range`` and ``curve_passes`` (composites scored for
        the curves).
    """
    image = torch.from_numpy(saliency)
    if curves is None:
        scorer, tokens, p_image, p_baseline = scored
        ranking = -cell_means(image, scorer.grid)[None, None].to(scorer.adapter.device)  # low = important, as a mask
        curves = scorer.curves(ranking, tokens, p_image, p_baseline, steps)
    deletion, insertion = curves
    return {
        "peak": list(peak(image)),
        "pointing_hit": pointing_hit(image, bbox) if bbox is not None else None,
        "box_mass": box_mass(image, bbox) if bbox is not None else None,
        "deletion_auc": deletion.auc,
        "insertion_auc": insertion.auc,
        "curve_out_of_range": deletion.leaves_unit_range(margin) or insertion.leaves_unit_range(margin),
        "curve_passes": 2 * (len(deletion.fractions) - 2),
    }
