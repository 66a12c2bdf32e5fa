"""The shape every metric of this package shares: the mean of one score per explained pair.

The states are a sum and a count, so memory stays bounded and processes sync by adding.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric


class MeanScore(Metric):
    """Mean over updates of ``score(*args)``; subclasses set ``score`` (a function of one item)."""

    is_differentiable = False
    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    @staticmethod
    def score(*args) -> float | Tensor:
        raise NotImplementedError

    def update(self, *args) -> None:
        """Add one item (see the subclass for its arguments)."""
        self.total += float(self.score(*args))
        self.count += 1

    def compute(self) -> Tensor:
        """The mean score (NaN before any update)."""
        return (self.total / self.count).float() if self.count > 0 else torch.tensor(float("nan"))
