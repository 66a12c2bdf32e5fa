"""The optimiser end to end: gradients reach the mask, the heatmap lands on the evidence."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from toy import RedBoxAdapter, red_box_scene

from lvlm_heat.config import ExplainConfig, OptimConfig, RefineConfig, SelectionConfig
from lvlm_heat.data import Query
from lvlm_heat.explainer import MaskExplainer
from lvlm_heat.pipeline import explain_pair
from lvlm_heat.prepare import prepare

ALL = ExplainConfig(select=SelectionConfig(rule="all"))


def test_gradient_reaches_the_mask_through_the_model(tiny_adapter, image):
    prepared = prepare(tiny_adapter, Query(image, "What color is the circle?", "the circle is red"), ALL)
    module = MaskExplainer(prepared, OptimConfig())
    path = torch.tensor([0.5, 1.0]).view(-1, 1, 1, 1)
    for insertion in (False, True):
        module.mask.grad = None
        module.scorer.log_probs(module.scorer.composites(path * module.mask, insertion)).sum().backward()
        grad = module.mask.grad
        assert grad is not None and grad.shape == module.mask.shape
        assert grad.abs().gt(0).float().mean() > 0.5  # most cells influence the answer
    assert all(not p.requires_grad for p in tiny_adapter.model.parameters())
    assert [name for name, _ in module.named_parameters()] == ["mask"]


@pytest.mark.parametrize(("masks", "insertion_weight"), [(1, 1.0), (2, 1.0), (1, 0.0)],
                         ids=["one mask", "iGOS++ two masks", "deletion game only"])
def test_heatmap_lands_on_the_only_evidence(masks, insertion_weight):
    box = (36, 8, 56, 28)
    adapter = RedBoxAdapter(box)
    optim = OptimConfig(mask_size=16, iterations=5, masks=masks, insertion_weight=insertion_weight)
    result = explain_pair(adapter, Query(red_box_scene(box=box), "What color is it?"), ExplainConfig(optim=optim))
    assert result.status == "explained"
    assert result.saliency.shape == (64, 64)
    row, col = np.unravel_index(result.saliency.argmax(), result.saliency.shape)
    left, top, right, bottom = box
    assert left <= col < right and top <= row < bottom
    inside = result.saliency[top:bottom, left:right].mean()
    outside = result.saliency[40:58, 6:24].mean()  # the green distractor
    assert inside > outside + 0.2
    assert result.deletion_auc < 0.35 < 0.65 < result.insertion_auc
    deletion_losses = [h["deletion"] for h in result.history if "deletion" in h]  # the optimisation's only
    assert deletion_losses[-1] < deletion_losses[0]


def test_deletion_game_alone_evaluates_half_the_composites():
    box = (36, 8, 56, 28)
    counts, histories = {}, {}
    for weight in (1.0, 0.0):
        adapter = _OutOfMemoryAbove(RedBoxAdapter(box), limit=10**6)
        config = ExplainConfig(optim=OptimConfig(mask_size=8, iterations=3, ig_iter=4, curve_steps=10, insertion_weight=weight))
        result = explain_pair(adapter, Query(red_box_scene(box=box), "q"), config)
        counts[weight] = sum(adapter.sizes)  # composites scored: selection, optimisation, curves
        histories[weight] = result.history
    # (iterations + the fine stage's) x ig_iter insertion composites fewer
    assert counts[1.0] - counts[0.0] == (3 + RefineConfig().iterations) * 4
    assert all(h.get("insertion", h.get("refine/insertion")) == 0 for h in histories[0.0])
    assert histories[1.0][0]["insertion"] != 0


def test_gradient_checkpointing_gives_the_same_gradient(tiny_llava, image):
    from lvlm_heat.adapters import load_adapter

    grads = []
    for checkpointing in (False, True):
        adapter = load_adapter(tiny_llava, precision="fp32", device="cpu", gradient_checkpointing=checkpointing)
        prepared = prepare(adapter, Query(image, "What color is the circle?", "the circle is red"), ALL)
        module = MaskExplainer(prepared, OptimConfig())
        composites = module.scorer.composites(torch.tensor([0.3, 1.0]).view(-1, 1, 1, 1) * module.mask, False)
        module.scorer.log_probs(composites).sum().backward()
        grads.append(module.mask.grad)
    assert torch.allclose(grads[0], grads[1], atol=1e-6) and grads[0].abs().sum() > 0


class _OutOfMemoryAbove:
    """Wraps an adapter so that more than ``limit`` composites at once raise CUDA's OOM error."""

    def __init__(self, adapter, limit: int) -> None:
        self.inner, self.limit, self.sizes = adapter, limit, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def answer_log_probs(self, prepared, pixels):
        count = next(iter(pixels.values())).shape[0]
        self.sizes.append(count)
        if count > self.limit:
            raise torch.OutOfMemoryError("simulated")
        return self.inner.answer_log_probs(prepared, pixels)


def test_out_of_memory_halves_the_batch_and_changes_nothing(caplog):
    box = (36, 8, 56, 28)
    config = ExplainConfig(optim=OptimConfig(mask_size=8, iterations=2, ig_iter=4, batch_size=8, curve_steps=10))
    reference = explain_pair(RedBoxAdapter(box), Query(red_box_scene(box=box), "q"), config)
    limited = _OutOfMemoryAbove(RedBoxAdapter(box), limit=3)
    with caplog.at_level("WARNING"):
        result = explain_pair(limited, Query(red_box_scene(box=box), "q"), config)
    assert "out of memory: retrying with batch_size 4" in caplog.text
    assert "batch_size 2" in caplog.text
    assert max(limited.sizes[-5:]) <= 2
    assert np.allclose(result.saliency, reference.saliency, atol=1e-6)
    assert result.deletion_auc == reference.deletion_auc


def test_batch_size_does_not_change_the_result(tiny_llava, image):
    from lvlm_heat.adapters import load_adapter

    adapter = load_adapter(tiny_llava, precision="fp32", device="cpu")
    results = []
    for batch_size in (1, 16):
        config = ExplainConfig(select=SelectionConfig(rule="all"),
                               optim=OptimConfig(iterations=3, ig_iter=5, mask_size=8, batch_size=batch_size, curve_steps=12))
        results.append(explain_pair(adapter, Query(image, "What color is the circle?", "the circle is red"), config))
    one, sixteen = results
    assert np.allclose(one.saliency, sixteen.saliency, atol=1e-4)
    assert abs(one.deletion_auc - sixteen.deletion_auc) < 1e-4
    assert abs(one.insertion_auc - sixteen.insertion_auc) < 1e-4
    assert not np.allclose(one.saliency, 0)


def test_custom_two_encoder_model_plugs_in_through_the_command_line(tmp_path):
    """A model outside transformers, loaded by its own adapter class given with --adapter."""
    import json

    from lvlm_heat.cli import main

    box = (36, 8, 56, 28)
    folder = tmp_path / "two_encoder"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"box": box}))
    red_box_scene(box=box).resize((128, 128), resample=0).save(tmp_path / "scene.png")  # 2x: boxes double
    main(["--adapter", "toy.TwoEncoderAdapter", "--model", str(folder), "--image", str(tmp_path / "scene.png"),
          "--question", "What is red?", "--output_dir", str(tmp_path / "out"), "--optim.mask_size", "16"])
    from lvlm_heat.reporting.outputs import read_record

    saliency = read_record(tmp_path / "out" / "scene").saliency
    assert saliency.shape == (128, 128)
    row, col = np.unravel_index(saliency.argmax(), saliency.shape)
    left, top, right, bottom = (2 * v for v in box)
    assert left <= col < right and top <= row < bottom
