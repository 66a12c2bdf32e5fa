"""Deletion / insertion curves and their AUC metrics (METHOD.md section 7)."""

from lvlm_heat.metrics.auc import DeletionAUC, InsertionAUC
from lvlm_heat.metrics.curves import Curve, perturbation_curve, removal_masks, trapezoid_auc
from lvlm_heat.metrics.plausibility import BoxSaliencyMass, PointingGame, box_mass, pointing_hit

__all__ = [
    "BoxSaliencyMass",
    "Curve",
    "DeletionAUC",
    "InsertionAUC",
    "PointingGame",
    "box_mass",
    "perturbation_curve",
    "pointing_hit",
    "removal_masks",
    "trapezoid_auc",
]
