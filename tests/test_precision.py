"""Half precision that is right: a bf16 model (on the CPU here) selects the same tokens and draws
nearly the same map as fp32; composites, log-probabilities and the loss stay in fp32."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from lvlm_heat import ExplainConfig, Explainer, OptimConfig
from lvlm_heat.demo import DEMO_PAIRS


@pytest.mark.slow  # bf16 has no fast kernels on the CPU: 40 s for two pairs
def test_bf16_selects_the_same_tokens_and_draws_nearly_the_same_map():
    pairs = [json.loads(line) for line in DEMO_PAIRS.read_text().splitlines()[1:3]]
    config = ExplainConfig(optim=OptimConfig(iterations=3))
    results = {}
    for precision in ("fp32", "bf16"):
        explainer = Explainer("demo", precision=precision, device="cpu", config=config)
        assert explainer.adapter.dtype == (torch.bfloat16 if precision == "bf16" else torch.float32)
        results[precision] = [explainer.explain(Image.open(DEMO_PAIRS.parent / p["image"]), p["question"])
                              for p in pairs]
    for full, half in zip(results["fp32"], results["bf16"]):
        assert half.answer == full.answer and half.selected_tokens == full.selected_tokens
        assert np.corrcoef(full.saliency.ravel(), half.saliency.ravel())[0, 1] > 0.95
        assert abs(half.deletion_auc - full.deletion_auc) < 0.05 and abs(half.insertion_auc - full.insertion_auc) < 0.05
        assert all(np.isfinite(h["total"]) for h in half.history)
