"""The optimiser end to end: gradients reach the mask, the heatmap lands on the evidence."""

from __future__ import annotations

import numpy as np
import torch
from toy import RedBoxAdapter, red_box_scene

from lvlm_heat.baseline import make_baseline
from lvlm_heat.explainer import MaskExplainer, OptimConfig
from lvlm_heat.pipeline import ExplainConfig, explain_pair


def test_gradient_reaches_the_mask_through_the_model(tiny_adapter, image):
    ids = tiny_adapter.encode_answer("the circle is red")
    prepared = tiny_adapter.prepare(image, make_baseline(image), "What color is the circle?", ids)
    module = MaskExplainer(tiny_adapter, prepared, torch.ones(len(ids), dtype=torch.bool), OptimConfig(), 0.5, 0.1)
    path = torch.tensor([0.5, 1.0]).view(-1, 1, 1, 1)
    for insertion in (False, True):
        module.mask.grad = None
        module.score(module.composites(path * module.mask, insertion)).sum().backward()
        grad = module.mask.grad
        assert grad is not None and grad.shape == module.mask.shape
        assert grad.abs().gt(0).float().mean() > 0.5  # most cells influence the answer
    assert all(not p.requires_grad for p in tiny_adapter.model.parameters())
    assert [name for name, _ in module.named_parameters()] == ["mask"]


def test_heatmap_lands_on_the_only_evidence():
    box = (36, 8, 56, 28)
    adapter = RedBoxAdapter(box)
    result = explain_pair(adapter, red_box_scene(box=box), "What color is it?",
                          config=ExplainConfig(optim=OptimConfig(mask_size=16, iterations=5)))
    assert result.status == "explained"
    assert result.saliency.shape == (64, 64)
    row, col = np.unravel_index(result.saliency.argmax(), result.saliency.shape)
    left, top, right, bottom = box
    assert left <= col < right and top <= row < bottom
    inside = result.saliency[top:bottom, left:right].mean()
    outside = result.saliency[40:58, 6:24].mean()  # the green distractor
    assert inside > outside + 0.2
    assert result.deletion_auc < 0.35 < 0.65 < result.insertion_auc
    deletion_losses = [h["deletion"] for h in result.history]
    assert deletion_losses[-1] < deletion_losses[0]
