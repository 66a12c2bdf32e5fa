"""The gradient explainer: ``--method gradient``.

A keep-mask ``W`` of fine cells over the whole image makes the composite ``I W + B (1 - W)`` (the
deletion composite of the optimised mask, docs/method.md, 'Objective'). The derivative of the explained
tokens' summed log-probability with respect to one cell is, through the adapter's differentiable
preprocessing, the pixels' gradient times ``I - B`` summed over that cell: gradient x input, measured
against the baseline rather than black (Shrikumar et al., 2017; Simonyan et al., 2014). With ``steps``
points ``W = k / steps`` along the path from the baseline to the image the mean of those derivatives is
integrated gradients on the cells (Sundararajan et al., 2017, "Axiomatic Attribution for Deep Networks";
a right Riemann sum, so one step is the gradient at the image itself).

Cost: ``steps`` composites per token group, forward and backward, in the scorer's batches (the default 16 is
one batch). Per-word maps
add one group each. The map is signed: a negative cell is one whose removal would raise the tokens'
probability; box mass counts the positive part only (:func:`~lvlm_heat.metrics.box_mass`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from lvlm_heat.config import GradientConfig
from lvlm_heat.geometry import mask_grid_shape
from lvlm_heat.prepare import Prepared


def gradient_maps(prepared: Prepared, config: GradientConfig) -> tuple[Tensor, int]:
    """The gradient (or integrated-gradients) map of each of the pair's token groups.

    Args:
        prepared: The pair (its groups of tokens and scorer).
        config: Path points and cells.

    Returns:
        ``(G, h, w)`` maps on ``config.cells`` cells on the image's long side, and the composites scored.
    """
    scorer = prepared.scorer
    cells = mask_grid_shape(prepared.inputs.image_size, config.cells)
    groups = prepared.groups.to(prepared.inputs.answer_ids.device).float()
    points = [(g, k / config.steps) for g in range(len(groups)) for k in range(1, config.steps + 1)]
    out = torch.zeros(len(groups), *cells)
    before = scorer.passes

    def run(first: int, last: int) -> None:
        chunk = points[first:last]
        masks = torch.tensor([t for _, t in chunk], device=scorer.adapter.device).view(-1, 1, 1, 1)
        masks = masks.expand(-1, 1, *cells).clone().requires_grad_(True)
        rows = groups[[g for g, _ in chunk]]
        log_probs = scorer.log_probs(scorer.composites(masks, insertion=False)).float()
        (gradient,) = torch.autograd.grad((log_probs * rows).sum(), masks)
        for row, (g, _) in enumerate(chunk):
            out[g] += gradient[row, 0].float().cpu() / config.steps

    with torch.enable_grad():
        scorer.in_chunks(len(points), run)
    return out, scorer.passes - before
