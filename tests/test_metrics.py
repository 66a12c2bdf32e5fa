"""Deletion / insertion curves and AUC against hand-computed values (docs/method.md, 'Deletion and insertion curves')."""

import pytest
import torch

from lvlm_heat.metrics import DeletionAUC, InsertionAUC, perturbation_curve, removal_masks, trapezoid_auc


def test_trapezoid_by_hand():
    fractions = torch.tensor([0.0, 0.25, 0.5, 1.0])
    values = torch.tensor([1.0, 0.2, 0.1, 0.0])
    # 0.25*(1+0.2)/2 + 0.25*(0.2+0.1)/2 + 0.5*(0.1+0)/2 = 0.15 + 0.0375 + 0.025
    assert trapezoid_auc(fractions, values).item() == pytest.approx(0.2125)


def test_removal_order_ties_in_raster_order_and_last_step_takes_the_rest():
    mask = torch.tensor([[[[0.5, 0.2, 0.5], [0.2, 0.9, 0.1], [0.7, 0.3, 0.2]]]])  # 9 cells
    keep, fractions = removal_masks(mask, steps=4)  # floor(9/4) = 2 cells per step, last takes 3
    removed = (1 - keep[:, 0]).flatten(1)
    assert fractions.tolist() == pytest.approx([0, 2 / 9, 4 / 9, 6 / 9, 1.0])
    order = [5, 1, 3, 8, 7, 0, 2, 6, 4]  # ascending value, ties by raster index
    for step, count in enumerate([0, 2, 4, 6, 9]):
        expected = torch.zeros(9)
        expected[order[:count]] = 1
        assert torch.equal(removed[step], expected), step


def test_curve_normalisation_and_auc_with_a_known_score():
    """The score is the kept fraction of the first two cells: deletion drops, insertion rises."""
    mask = torch.tensor([[[[0.0, 0.1, 1.0, 1.0]]]])

    def score(keep, insertion):
        important = keep[:, 0, 0, :2].mean(-1)
        return 0.1 + 0.8 * ((1 - important) if insertion else important)

    deletion = perturbation_curve(score, mask, p_image=0.9, p_baseline=0.1, insertion=False, steps=4)
    insertion = perturbation_curve(score, mask, p_image=0.9, p_baseline=0.1, insertion=True, steps=4)
    assert deletion.normalized.tolist() == pytest.approx([1.0, 0.5, 0.0, 0.0, 0.0])
    assert insertion.normalized.tolist() == pytest.approx([0.0, 0.5, 1.0, 1.0, 1.0])
    assert deletion.probs[0].item() == pytest.approx(0.9)
    assert deletion.auc == pytest.approx(0.25)  # 0.25*(1+0.5)/2 + 0.25*0.5/2
    assert insertion.auc == pytest.approx(0.75)


def test_metrics_average_curves_and_flags():
    deletion, insertion = DeletionAUC(), InsertionAUC()
    x = torch.tensor([0.0, 0.5, 1.0])
    deletion.update(x, torch.tensor([1.0, 0.4, 0.0]))  # 0.35 + 0.1 = 0.45
    deletion.update(x, torch.tensor([1.0, 0.0, 0.0]))  # 0.25
    insertion.update(x, torch.tensor([0.0, 0.8, 1.0]))  # 0.2 + 0.45 = 0.65
    assert deletion.compute().item() == pytest.approx(0.35)
    assert insertion.compute().item() == pytest.approx(0.65)
    assert DeletionAUC.higher_is_better is False and InsertionAUC.higher_is_better is True
    assert torch.isnan(DeletionAUC().compute())
