"""``--method``: every explainer localises known evidence, shares the pair's answer and tokens, and writes the same
files; the gradient map is the derivative it claims to be."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from toy import ColourWordsAdapter, RedBoxAdapter, red_box_scene

from lvlm_heat.adapters.base import blend
from lvlm_heat.baseline import make_baseline
from lvlm_heat.config import METHODS, ExplainConfig, GradientConfig, OcclusionConfig, OptimConfig, SelectionConfig
from lvlm_heat.data import Query
from lvlm_heat.metrics import pointing_hit
from lvlm_heat.pipeline import explain_pair
from lvlm_heat.record import ExplanationRecord
from lvlm_heat.reporting.outputs import read_record, write_pair_outputs

RED, GREEN = (36, 8, 56, 28), (6, 40, 24, 58)
FAST = OptimConfig(mask_size=16, iterations=3, ig_iter=4, curve_steps=8)


def _config(method: str, **changes) -> ExplainConfig:
    return ExplainConfig(method=method, optim=FAST, select=SelectionConfig(rule="all"),
                         occlusion=OcclusionConfig(segments=30), **changes)


def _mass(saliency: np.ndarray, box) -> float:
    left, top, right, bottom = box
    positive = np.clip(saliency, 0, None)
    return float(positive[top:bottom, left:right].sum() / positive.sum())


@pytest.fixture(scope="module")
def every_method() -> ExplanationRecord:
    query = Query(red_box_scene(box=RED), "What color is it?", pair_id="toy", bbox=RED)
    return explain_pair(RedBoxAdapter(RED), query, _config(",".join(METHODS)))


@pytest.mark.parametrize("method", METHODS)
def test_every_method_finds_the_only_evidence(every_method, method):
    found = every_method.method_map(method)
    assert found.saliency.shape == (64, 64) and np.isfinite(found.saliency).all()
    assert found.pointing_hit and found.box_mass == pytest.approx(_mass(found.saliency, RED), abs=1e-5)
    assert found.box_mass > 0.5, (method, found.box_mass)  # the box is a tenth of the image
    assert found.deletion.auc < 0.5 < found.insertion.auc, (method, found.deletion.auc, found.insertion.auc)
    assert found.passes >= 1 and found.seconds > 0


def test_the_methods_share_the_answer_and_tokens_and_the_first_is_the_record_s_map(every_method):
    assert [m.method for m in every_method.methods] == list(METHODS)
    assert [m.folder for m in every_method.methods] == ["", "superpixel", "grid", "gradient"]
    first = every_method.methods[0]
    assert every_method.saliency is first.saliency and every_method.deletion is first.deletion
    assert every_method.history  # igos ran: the loss history is kept
    alone = explain_pair(RedBoxAdapter(RED), Query(red_box_scene(box=RED), "What color is it?", pair_id="toy",
                                                     bbox=RED), _config("gradient"))
    np.testing.assert_allclose(alone.saliency, every_method.method_map("gradient").saliency, rtol=1e-5, atol=1e-7)
    assert alone.history == [] and [m.method for m in alone.methods] == ["gradient"]
    costs = {m.method: m.passes for m in every_method.methods}
    assert costs["gradient"] == 16 and costs["grid"] == 8 * 8 + 1 and costs["igos"] > costs["superpixel"]


def test_each_method_writes_the_same_files_and_reads_back(every_method, tmp_path):
    folder = tmp_path / "toy"
    write_pair_outputs(folder, every_method)
    for method in every_method.methods:
        place = folder / method.folder
        assert {p.name for p in place.iterdir()} >= {"saliency.npy", "overlay.png", "curves.png"}
    back = read_record(folder)
    assert [m.method for m in back.methods] == list(METHODS)
    for old, new in zip(every_method.methods, back.methods):
        np.testing.assert_allclose(new.saliency, old.saliency, atol=1e-6)
        assert (new.deletion.auc, new.insertion.auc, new.passes, new.pointing_hit) == \
               (old.deletion.auc, old.insertion.auc, old.passes, old.pointing_hit)
    assert ExplanationRecord.from_dict(every_method.to_dict()).to_dict() == every_method.to_dict()
    view = back.for_method("grid")
    assert view.saliency is back.method_map("grid").saliency and view.deletion_auc == back.methods[2].deletion.auc


@pytest.mark.parametrize("method", ["superpixel", "grid", "gradient"])
def test_per_word_maps_of_every_method_land_on_their_own_object(method):
    config = _config(method, maps="per_word")
    record = explain_pair(ColourWordsAdapter(RED, GREEN), Query(red_box_scene(box=RED), "Which colours?"), config)
    red, green = record.words
    assert (red.word, green.word) == ("red", "green")
    for word, box in ((red, RED), (green, GREEN)):
        assert pointing_hit(torch.from_numpy(word.saliency), box), (method, word.word)
        assert word.deletion.auc < 0.5 < word.insertion.auc, (method, word.word)


def test_integrated_gradients_add_up_to_the_score_difference():
    """Completeness: the cells' integrated gradients sum to ``score(I) - score(B)`` (Sundararajan et al., 2017),
    and the one-step gradient is the derivative of the score along the mask (a finite difference)."""
    adapter, image = RedBoxAdapter(RED), red_box_scene(box=RED)
    query = Query(image, "What color is it?", pair_id="toy")
    record = explain_pair(adapter, query, _config("gradient", gradient=GradientConfig(steps=256, cells=16)))
    (token,) = record.tokens
    assert record.saliency_grid.sum() == pytest.approx(token.log_prob_image - token.log_prob_baseline, rel=0.02)

    one_step = explain_pair(adapter, query, _config("gradient", gradient=GradientConfig(steps=1, cells=16)))
    inputs = adapter.prepare(image, make_baseline(image), query.question, torch.tensor([0]))

    def score(keep: float) -> float:
        mask = torch.full((1, 1, 16, 16), keep)
        return float(adapter.answer_log_probs(inputs, blend(inputs, adapter.project_mask(mask, inputs), False)))

    eps = 1e-3
    assert one_step.saliency_grid.sum() == pytest.approx((score(1.0) - score(1.0 - eps)) / eps, rel=0.01)


@pytest.mark.parametrize("method, message", [("saliency", "method is one or more of"),
                                             ("igos,igos", "each explainer once"), ("", "method is one or more of")])
def test_a_bad_method_is_one_clear_error(method, message):
    with pytest.raises(ValueError, match=message):
        ExplainConfig(method=method)
    assert ExplainConfig(method=["igos", "gradient"]).methods == ["igos", "gradient"]
    assert ExplainConfig(method=" grid , igos").methods == ["grid", "igos"]
