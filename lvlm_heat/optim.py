"""The iGOS update rule (docs/method.md, 'Update rule'): Nesterov momentum on a clamped mask.

::

    theta_i = M - lr * grad
    M <- clamp(theta_i + i / (i + momentum) * (theta_i - theta_{i-1}), 0, 1)

The loss sums log-probabilities, whose gradients per mask cell differ by orders of
magnitude across models and answers. By default the step is therefore relative:
``lr = step_size / max|grad|`` of the first iteration, so the first step moves the most
salient cell by ``step_size``. Should a later gradient be larger (an answer whose
likelihood is saturated at first gives a vanishing first gradient), the largest seen so
far takes its place, so that no step ever moves a cell by more than ``step_size`` (before
momentum). An absolute ``lr`` (the paper's 10) remains available.
"""

from __future__ import annotations

import torch


class IGOSNesterov(torch.optim.Optimizer):
    """Nesterov-momentum descent with the mask clamped to ``[0, 1]`` after each step.

    Args:
        params: The mask parameter(s).
        step_size: Relative step ``c``: the largest move of a cell in one step (before momentum).
        lr: Absolute step size; when given, ``step_size`` is ignored.
        momentum: ``m`` in the momentum factor ``i / (i + m)``.
        independent_slices: Take the relative step's largest gradient per slice of the first dimension
            (masks optimised side by side for different objectives, such as per-word maps), not over
            the whole parameter.

    Example:
        >>> mask = torch.nn.Parameter(torch.ones(1, 1, 2, 2))
        >>> opt = IGOSNesterov([mask], step_size=0.5)
        >>> mask.grad = torch.tensor([[[[2.0, 1.0], [0.0, -1.0]]]])
        >>> opt.step()
        >>> mask.data.flatten().tolist()
        [0.5, 0.75, 1.0, 1.0]
    """

    def __init__(self, params, step_size: float = 0.3, lr: float | None = None, momentum: float = 5.0,
                 independent_slices: bool = False) -> None:
        if step_size <= 0 or (lr is not None and lr <= 0) or momentum < 0:
            raise ValueError("step_size and lr must be positive and momentum non-negative")
        defaults = {"step_size": step_size, "lr": lr, "momentum": momentum, "independent_slices": independent_slices}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["iteration"] = 0
                    state["peak"] = torch.zeros(())
                    state["previous"] = p.detach().clone()
                if group["independent_slices"]:
                    peak = p.grad.abs().flatten(1).amax(1).view(-1, *[1] * (p.dim() - 1))
                else:
                    peak = p.grad.abs().max()
                state["peak"] = torch.maximum(state["peak"].to(peak), peak)
                if group["lr"] is not None:
                    state["lr"] = group["lr"]
                else:
                    peak = state["peak"]
                    state["lr"] = torch.where(peak > 0, group["step_size"] / peak.clamp_min(1e-30), group["step_size"])
                i = state["iteration"]
                factor = i / (i + group["momentum"]) if i + group["momentum"] > 0 else 0.0
                theta = p - state["lr"] * p.grad
                p.copy_(theta + factor * (theta - state["previous"])).clamp_(0, 1)
                state["previous"] = theta
                state["iteration"] = i + 1
        return loss
