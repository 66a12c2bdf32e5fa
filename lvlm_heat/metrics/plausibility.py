"""Plausibility of a heatmap against a ground-truth box, as torchmetrics metrics.

- :class:`PointingGame`: the share of maps whose maximum falls inside the box;
- :class:`BoxSaliencyMass`: the mean share of the map's (non-negative) mass inside the box.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric


def _inside(shape: tuple[int, int], box: tuple[float, float, float, float], device) -> Tensor:
    height, width = shape
    left, top, right, bottom = box
    rows = torch.arange(height, device=device)[:, None] + 0.5
    cols = torch.arange(width, device=device)[None, :] + 0.5
    return (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)


def pointing_hit(saliency: Tensor, box: tuple[float, float, float, float]) -> bool:
    """Whether the argmax of ``saliency`` ``(H, W)`` lies in ``box`` ``(left, top, right, bottom)``.

    Example:
        >>> saliency = torch.zeros(4, 4); saliency[1, 2] = 1.0
        >>> pointing_hit(saliency, (2, 0, 4, 2)), pointing_hit(saliency, (0, 0, 2, 2))
        (True, False)
    """
    flat = int(saliency.flatten().argmax())
    return bool(_inside(saliency.shape, box, saliency.device).flatten()[flat])


def box_mass(saliency: Tensor, box: tuple[float, float, float, float]) -> float:
    """Share of ``saliency.clamp(min=0)`` inside ``box`` (0 for an all-zero map).

    Example:
        >>> box_mass(torch.tensor([[1.0, 3.0], [0.0, 0.0]]), (1, 0, 2, 1))
        0.75
    """
    positive = saliency.clamp(min=0)
    total = positive.sum()
    return float(positive[_inside(saliency.shape, box, saliency.device)].sum() / total) if total > 0 else 0.0


class _MeanScore(Metric):
    """Mean of a per-map score against a box; states are sums, so processes sync by adding."""

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    @staticmethod
    def score(saliency: Tensor, box: tuple[float, float, float, float]) -> float:
        raise NotImplementedError

    def update(self, saliency: Tensor, box: tuple[float, float, float, float]) -> None:
        """Add one ``(H, W)`` map and its ``(left, top, right, bottom)`` box."""
        self.total += float(self.score(saliency, box))
        self.count += 1

    def compute(self) -> Tensor:
        return (self.total / self.count).float() if self.count > 0 else torch.tensor(float("nan"))


class PointingGame(_MeanScore):
    """Share of saliency maps whose maximum falls inside their box: higher is better.

    Example:
        >>> metric = PointingGame()
        >>> saliency = torch.zeros(4, 4); saliency[1, 2] = 1.0
        >>> metric.update(saliency, (2, 0, 4, 2)); metric.update(saliency, (0, 0, 2, 2))
        >>> metric.compute()
        tensor(0.5000)
    """

    score = staticmethod(pointing_hit)


class BoxSaliencyMass(_MeanScore):
    """Mean share of saliency mass inside the box: higher is better."""

    score = staticmethod(box_mass)
