"""The update rule of docs/method.md, 'Update rule', step by step on a tiny tensor."""

import pytest
import torch

from lvlm_heat.optim import IGOSNesterov


def test_two_steps_match_the_method_by_hand():
    mask = torch.nn.Parameter(torch.tensor([[[[1.0, 0.8, 0.6]]]]))
    optimizer = IGOSNesterov([mask], step_size=0.3, momentum=5.0)
    g0 = torch.tensor([[[[3.0, -1.5, 0.0]]]])
    mask.grad = g0.clone()
    optimizer.step()
    lr = 0.3 / 3.0  # relative: c / max|grad| of the first iteration
    theta0 = torch.tensor([1.0, 0.8, 0.6]) - lr * g0.flatten()  # [0.7, 0.95, 0.6]; factor 0/(0+5) = 0
    assert mask.data.flatten().tolist() == pytest.approx(theta0.tolist())

    g1 = torch.tensor([[[[1.0, 1.0, -2.0]]]])
    mask.grad = g1.clone()
    optimizer.step()
    theta1 = theta0 - lr * g1.flatten()  # smaller gradient: the lr stays that of the first iteration
    expected = (theta1 + (1 / (1 + 5)) * (theta1 - theta0)).clamp(0, 1)
    assert mask.data.flatten().tolist() == pytest.approx(expected.tolist())
    assert mask.data.max() <= 1.0  # third cell clamped


def test_a_larger_later_gradient_never_moves_a_cell_by_more_than_the_step():
    mask = torch.nn.Parameter(torch.full((1, 1, 1, 2), 0.9))
    optimizer = IGOSNesterov([mask], step_size=0.3, momentum=1e9)  # i / (i + m) ~ 0: no momentum
    mask.grad = torch.tensor([[[[1e-4, 0.0]]]])  # a saturated answer: a vanishing first gradient
    optimizer.step()
    assert mask.data.flatten().tolist() == pytest.approx([0.6, 0.9])
    mask.grad = torch.tensor([[[[0.0, 5.0]]]])  # 50,000 times larger: the step is still 0.3
    optimizer.step()
    assert mask.data.flatten().tolist() == pytest.approx([0.6, 0.6])


def test_absolute_lr_is_used_as_given():
    mask = torch.nn.Parameter(torch.ones(1, 1, 1, 2))
    optimizer = IGOSNesterov([mask], lr=0.01)
    mask.grad = torch.tensor([[[[10.0, 100.0]]]])
    optimizer.step()
    assert mask.data.flatten().tolist() == pytest.approx([0.9, 0.0])


def test_rejects_bad_settings():
    with pytest.raises(ValueError):
        IGOSNesterov([torch.nn.Parameter(torch.ones(1))], step_size=0)
