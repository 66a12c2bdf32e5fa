"""Deletion and insertion AUC as torchmetrics metrics.

Each ``update`` takes one normalised curve (``fractions`` and ``normalized`` of a
:class:`~lvlm_heat.metrics.curves.Curve`); ``compute`` returns the mean AUC over the curves
seen, across processes too.
"""

from __future__ import annotations

import torch  # noqa: F401  (doctests)
from torch import Tensor

from lvlm_heat.metrics.functional import trapezoid_auc
from lvlm_heat.metrics.mean import MeanScore


def _curve_auc(fractions: Tensor, values: Tensor) -> Tensor:
    """AUC of one curve: ``fractions`` and normalised ``values``, both ``(K + 1,)``, in float64."""
    return trapezoid_auc(fractions.double(), values.double())


class DeletionAUC(MeanScore):
    """Mean area under the deletion curve: lower is better.

    Example:
        >>> metric = DeletionAUC()
        >>> metric.update(torch.tensor([0.0, 0.5, 1.0]), torch.tensor([1.0, 0.2, 0.0]))
        >>> metric.update(torch.tensor([0.0, 0.5, 1.0]), torch.tensor([1.0, 0.0, 0.0]))
        >>> metric.compute()
        tensor(0.3000)
    """

    higher_is_better = False
    score = staticmethod(_curve_auc)


class InsertionAUC(MeanScore):
    """Mean area under the insertion curve: higher is better.

    Example:
        >>> metric = InsertionAUC()
        >>> metric.update(torch.tensor([0.0, 0.5, 1.0]), torch.tensor([0.0, 1.0, 1.0]))
        >>> metric.compute()
        tensor(0.7500)
    """

    higher_is_better = True
    score = staticmethod(_curve_auc)
