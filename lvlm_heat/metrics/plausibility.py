"""Plausibility of a heatmap against a ground-truth box, as torchmetrics metrics.

- :class:`PointingGame`: the share of maps whose maximum falls inside the box;
- :class:`BoxSaliencyMass`: the mean share of the map's (non-negative) mass inside the box.

Each ``update`` takes one ``(H, W)`` map and its ``(left, top, right, bottom)`` box.
"""

from __future__ import annotations

import torch  # noqa: F401  (doctests)

from lvlm_heat.metrics.functional import box_mass, pointing_hit
from lvlm_heat.metrics.mean import MeanScore


class PointingGame(MeanScore):
    """Share of saliency maps whose maximum falls inside their box: higher is better.

    Example:
        >>> metric = PointingGame()
        >>> saliency = torch.zeros(4, 4); saliency[1, 2] = 1.0
        >>> metric.update(saliency, (2, 0, 4, 2)); metric.update(saliency, (0, 0, 2, 2))
        >>> metric.compute()
        tensor(0.5000)
    """

    higher_is_better = True
    score = staticmethod(pointing_hit)


class BoxSaliencyMass(MeanScore):
    """Mean share of saliency mass inside the box: higher is better."""

    higher_is_better = True
    score = staticmethod(box_mass)
