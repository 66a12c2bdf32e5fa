"""Visual reliance: how likely the answer is with the image, the baseline, and no image at all."""

from __future__ import annotations

import math

import pytest

from lvlm_heat.record import NOT_GROUNDED, ExplanationRecord


def _record(log_p_image, log_p_no_image, reference=None, match=None) -> ExplanationRecord:
    result = ExplanationRecord("p", "q?", "a", NOT_GROUNDED, [], reference=reference, answer_match=match)
    result.reliance = {"log_p_image": log_p_image, "log_p_baseline": -9.0, "log_p_no_image": log_p_no_image}
    return result


@pytest.mark.parametrize(("with_image", "without", "expected"), [
    (-0.1, -0.1 + math.log(0.6), True),  # the prior alone gives 60% of the confidence
    (-0.1, -0.1 + math.log(0.4), False),
    (-0.1, None, None),  # a model that cannot answer without an image
])
def test_answered_without_image(with_image, without, expected):
    record = _record(with_image, without)
    assert record.answered_without_image is expected
    entry = record.to_dict()["reliance"]
    assert entry["answered_without_image"] is expected
    assert entry["log_p_image"] == with_image and entry["log_p_no_image"] == without


def test_correct_follows_the_reference():
    assert _record(-1, -2).correct is None
    assert _record(-1, -2, reference="red", match="exact").to_dict()["correct"] is True
    assert _record(-1, -2, reference="red", match=None).to_dict()["correct"] is False


def test_demo_model_needs_the_image():
    """The demo LLaVA was trained only with images: without one its answer is improbable."""
    from PIL import Image

    from lvlm_heat.adapters import load_adapter
    from lvlm_heat.config import ExplainConfig, OptimConfig
    from lvlm_heat.data import Query
    from lvlm_heat.demo import DEMO_PAIRS
    from lvlm_heat.pipeline import explain_pair

    adapter = load_adapter("demo", precision="fp32", device="cpu")
    result = explain_pair(adapter, Query(Image.open(DEMO_PAIRS.parent / "demo_1.png"), "What shape is the green object?"),
                          ExplainConfig(optim=OptimConfig(iterations=1, curve_steps=2)))
    reliance = result.reliance
    assert reliance["log_p_image"] > math.log(0.9)
    assert reliance["log_p_no_image"] < reliance["log_p_image"] - 5
    assert reliance["log_p_baseline"] < reliance["log_p_image"] - 5
    assert result.answered_without_image is False
