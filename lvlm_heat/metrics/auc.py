"""Deletion and insertion AUC as torchmetrics metrics.

Each ``update`` takes one normalised curve (:class:`~lvlm_heat.metrics.curves.Curve`);
``compute`` returns the mean AUC over the curves seen, across processes too. The
mean curve, resampled on a fixed fraction grid, is kept as a summed tensor so memory
stays bounded and the states sync with a plain sum.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

from lvlm_heat.metrics.curves import trapezoid_auc


def resample_curve(fractions: Tensor, values: Tensor, grid: Tensor) -> Tensor:
    """Linear interpolation of a curve onto ``grid`` (both over ``[0, 1]``)."""
    index = torch.searchsorted(fractions.contiguous(), grid.contiguous(), right=True).clamp(1, len(fractions) - 1)
    x0, x1 = fractions[index - 1], fractions[index]
    y0, y1 = values[index - 1], values[index]
    t = torch.where(x1 > x0, (grid - x0) / (x1 - x0).clamp_min(1e-12), torch.zeros_like(grid))
    return y0 + t * (y1 - y0)


class _PerturbationAUC(Metric):
    is_differentiable = False
    full_state_update = False

    def __init__(self, grid_points: int = 51, **kwargs) -> None:
        super().__init__(**kwargs)
        self.grid = torch.linspace(0, 1, grid_points)
        self.add_state("auc_sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("curve_sum", default=torch.zeros(grid_points, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, fractions: Tensor, values: Tensor) -> None:
        """Add one curve: ``fractions`` and normalised ``values``, both ``(K + 1,)``."""
        fractions, values = fractions.to(self.device, torch.float64), values.to(self.device, torch.float64)
        self.auc_sum += trapezoid_auc(fractions, values)
        self.count += 1
        self.curve_sum += resample_curve(fractions, values, self.grid.to(self.device, torch.float64))

    def compute(self) -> Tensor:
        """Mean AUC of the curves seen (NaN before any)."""
        return (self.auc_sum / self.count).float() if self.count > 0 else torch.tensor(float("nan"))

    def mean_curve(self) -> tuple[Tensor, Tensor]:
        """The fraction grid and the mean curve on it."""
        return self.grid, (self.curve_sum / self.count.clamp_min(1)).float()


class DeletionAUC(_PerturbationAUC):
    """Mean area under the deletion curve: lower is better.

    Example:
        >>> metric = DeletionAUC()
        >>> metric.update(torch.tensor([0.0, 0.5, 1.0]), torch.tensor([1.0, 0.2, 0.0]))
        >>> metric.update(torch.tensor([0.0, 0.5, 1.0]), torch.tensor([1.0, 0.0, 0.0]))
        >>> metric.compute()
        tensor(0.3000)
    """

    higher_is_better = False


class InsertionAUC(_PerturbationAUC):
    """Mean area under the insertion curve: higher is better.

    Example:
        >>> metric = InsertionAUC()
        >>> metric.update(torch.tensor([0.0, 0.5, 1.0]), torch.tensor([0.0, 1.0, 1.0]))
        >>> metric.compute()
        tensor(0.7500)
    """

    higher_is_better = True
