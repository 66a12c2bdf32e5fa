"""Reference explainers by occlusion, and the metrics every explainer of the sanity check is scored with.

Occlusion (Zeiler and Fergus, 2014, "Visualizing and Understanding Convolutional Networks"; with
superpixels as Captum's ``FeatureAblation`` does it): hide one region at a time, one forward pass
per region, and call a region as important as the selected answer tokens' score drops,
``score(I) - score(I with the region hidden)``, where ``score`` is the sum of their log-probabilities
(METHOD.md section 3). Regions are a label map on the work grid
(:mod:`lvlm_heat.sanity.superpixels`); a hidden region is filled from a second image (the baseline
B, or a flat colour) through the adapter's own geometry, exactly as the mask's composites are.

:func:`map_metrics` scores any map with the explainer's own curve machinery: the map is averaged
over each cell of the explainer's mask grid, the cells are ranked by that value and
:func:`~lvlm_heat.metrics.perturbation_curve` draws the deletion and insertion curves with
:meth:`MaskExplainer.curve_scores <lvlm_heat.explainer.MaskExplainer.curve_scores>`; the pointing
game and box mass use :func:`~lvlm_heat.metrics.pointing_hit` and :func:`~lvlm_heat.metrics.box_mass`, with
ties at a map's maximum broken at their centre (:func:`peak`) for every explainer alike.
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
from lvlm_heat.explainer import MaskExplainer, in_chunks
from lvlm_heat.geometry import mask_grid_shape, upsample_to_image
from lvlm_heat.metrics import box_mass, perturbation_curve, pointing_hit
from lvlm_heat.metrics.curves import Curve


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
def occlusion_map(scorer: MaskExplainer, labels: Tensor) -> Tensor:
    """Saliency of every region: the drop of the selected tokens' score when it alone is hidden.

    Args:
        scorer: Holds the adapter, the pair (its ``baseline`` is the fill) and the selected tokens.
        labels: ``(h, w)`` long region labels ``0 .. n - 1`` on the work grid over the whole image.

    Returns:
        ``(h, w)`` float map on the work grid, each pixel the drop of its region; ``n + 1`` composites
        scored (the unoccluded image first, in the same batches).
    """
    device = scorer.adapter.device
    labels = labels.to(device)
    regions = int(labels.max()) + 1
    keep = (labels[None] != torch.arange(-1, regions, device=device)[:, None, None]).float()[:, None]
    scores = torch.zeros(regions + 1)

    def run(first: int, last: int) -> None:
        scores[first:last] = scorer.score(scorer.composites(keep[first:last], insertion=False)).float().cpu()

    scorer.batch_size = in_chunks(regions + 1, scorer.batch_size, run)  # halved for good on out-of-memory
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


def peak(saliency: Tensor) -> tuple[int, int]:
    """``(row, col)`` of the map's maximum; ties broken at the tied pixel nearest their centroid.

    A flat-topped map (an occlusion block or segment, a plateau of the mask) then points at the centre
    of its top region rather than at its first pixel in raster order, which would often lie on the
    region's edge, outside the object.

    Example:
        >>> saliency = torch.zeros(5, 5); saliency[1:4, 0:3] = 1.0
        >>> peak(saliency)
        (2, 1)
    """
    rows, cols = torch.nonzero(saliency == saliency.max(), as_tuple=True)
    centre_y, centre_x = rows.double().mean(), cols.double().mean()
    k = int(((rows - centre_y) ** 2 + (cols - centre_x) ** 2).argmin())
    return int(rows[k]), int(cols[k])


def map_metrics(scorer: MaskExplainer | None, saliency: np.ndarray, bbox: Box | None, steps: int, margin: float,
                curves: tuple[Curve, Curve] | None = None) -> dict[str, Any]:
    """Pointing game, box mass, deletion and insertion AUC of one map.

    Args:
        scorer: Scores keep-masks against the pair's baseline B (``None`` when ``curves`` are given).
        saliency: ``(H, W)`` over the original image, higher = more important.
        bbox: The evidence box, if the dataset gives one.
        steps: Curve steps ``K``.
        margin: How far a normalised curve may leave [0, 1] before the map is flagged ``curve_out_of_range``.
        curves: Deletion and insertion curves already drawn over the mask grid (the optimised
            mask's own, from :func:`~lvlm_heat.one_pair.explain_pair`); drawn here otherwise.

    Returns:
        ``peak`` (:func:`peak`), ``pointing_hit`` and ``box_mass`` (``None`` without a box), ``deletion_auc``,
        ``insertion_auc``, ``curve_out_of_range`` and ``curve_passes`` (composites scored for the curves).
    """
    image = torch.from_numpy(saliency)
    if curves is None:
        grid = mask_grid_shape(tuple(saliency.shape), scorer.config.mask_size)
        ranking = -cell_means(image, grid)[None, None].to(scorer.adapter.device)  # low = important, as a mask
        curves = tuple(perturbation_curve(scorer.curve_scores, ranking, scorer.p_image, scorer.p_baseline, insertion,
                                          steps) for insertion in (False, True))
    deletion, insertion = curves
    row, col = peak(image)
    spike = torch.zeros_like(image)
    spike[row, col] = 1.0  # the pointing game's own box test, at the peak chosen above
    return {
        "peak": [row, col],
        "pointing_hit": pointing_hit(spike, bbox) if bbox is not None else None,
        "box_mass": box_mass(image, bbox) if bbox is not None else None,
        "deletion_auc": deletion.auc,
        "insertion_auc": insertion.auc,
        "curve_out_of_range": deletion.leaves_unit_range(margin) or insertion.leaves_unit_range(margin),
        "curve_passes": 2 * (len(deletion.fractions) - 2),
    }
