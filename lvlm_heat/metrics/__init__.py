"""Deletion / insertion curves, their AUC, and plausibility against a box.

The method: docs/method.md, 'Deletion and insertion curves'.

- :mod:`~lvlm_heat.metrics.functional`: the maths (AUC, pointing hit, box mass) on tensors;
- :mod:`~lvlm_heat.metrics.curves`: curve generation from any scoring function;
- :mod:`~lvlm_heat.metrics.auc`: :class:`DeletionAUC`, :class:`InsertionAUC` (torchmetrics);
- :mod:`~lvlm_heat.metrics.plausibility`: :class:`PointingGame`, :class:`BoxSaliencyMass` (torchmetrics).

The torchmetrics classes are imported on first use: torchmetrics itself loads matplotlib and,
where installed, transformers, which the functional parts do not need.
"""

from __future__ import annotations

import importlib
from typing import Any

from lvlm_heat.metrics.curves import Curve, perturbation_curve, removal_masks
from lvlm_heat.metrics.functional import box_mass, peak, pointing_hit, trapezoid_auc

_METRICS = {
    "DeletionAUC": "lvlm_heat.metrics.auc",
    "InsertionAUC": "lvlm_heat.metrics.auc",
    "PointingGame": "lvlm_heat.metrics.plausibility",
    "BoxSaliencyMass": "lvlm_heat.metrics.plausibility",
}

__all__ = [
    "BoxSaliencyMass",
    "Curve",
    "DeletionAUC",
    "InsertionAUC",
    "PointingGame",
    "box_mass",
    "peak",
    "perturbation_curve",
    "pointing_hit",
    "removal_masks",
    "trapezoid_auc",
]


def __getattr__(name: str) -> Any:
    if name in _METRICS:
        return getattr(importlib.import_module(_METRICS[name]), name)
    raise AttributeError(f"module 'lvlm_heat.metrics' has no attribute {name!r}")
