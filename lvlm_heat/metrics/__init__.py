"""Deletion / insertion curves and their AUC metrics (METHOD.md section 7)."""

from lvlm_heat.metrics.auc import DeletionAUC, InsertionAUC
from lvlm_heat.metrics.curves import Curve, perturbation_curve, removal_masks, trapezoid_auc

__all__ = ["Curve", "DeletionAUC", "InsertionAUC", "perturbation_curve", "removal_masks", "trapezoid_auc"]
