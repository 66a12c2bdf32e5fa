"""The grounded demo sets used to measure localisation: objects where their boxes say, any image shape."""

import numpy as np
import pytest

from lvlm_heat.demo.evaluate import make_pair, paint_out
from lvlm_heat.demo.synthetic import COLORS


@pytest.mark.parametrize("split, size", [("heldout", (128, 128)), ("large", (512, 512)), ("wide", (256, 128)),
                                         ("tall", (128, 256)), ("crowded", (128, 128))])
def test_boxes_follow_the_image(split, size):
    for index in range(6):
        pair = make_pair(split, index)
        assert pair.image.size == size
        left, top, right, bottom = pair.target
        assert 0 <= left < right <= size[0] and 0 <= top < bottom <= size[1]
        centre = np.asarray(pair.image)[(top + bottom) // 2 + (bottom - top) // 4, (left + right) // 2]
        expected = np.array(COLORS[pair.qa.target.color])
        assert np.abs(centre.astype(int) - expected).max() <= 40, (split, index)  # colours are jittered by 15
        assert make_pair(split, index).image.tobytes() == pair.image.tobytes()  # a pure function


def test_paint_out_removes_the_object():
    pair = make_pair("heldout", 0)
    painted = np.asarray(paint_out(pair.image, pair.target, [pair.target, *pair.others])).astype(int)
    left, top, right, bottom = pair.target
    region = painted[top:bottom, left:right]
    assert np.ptp(region.reshape(-1, 3), axis=0).max() == 0  # one flat colour
    assert np.abs(region[0, 0] - np.array(COLORS[pair.qa.target.color])).max() > 40


def test_crowded_scenes_hold_four_objects():
    assert [1 + len(make_pair("crowded", index).others) for index in range(12)] == [4] * 12


def test_evaluation_lists_every_grounded_pair_it_misses():
    from lvlm_heat import ExplainConfig, Explainer, OptimConfig
    from lvlm_heat.demo.evaluate import evaluate

    config = ExplainConfig(optim=OptimConfig(iterations=1, ig_iter=2, mask_size=4, curve_steps=4))
    row = evaluate(Explainer("demo", device="cpu", config=config), "heldout", pairs=4)
    assert row["grounded"] >= 2
    assert row["on_target"] + len(row["misses"]) == row["grounded"]
    assert all(miss["peak"] in (None, "other", "background") for miss in row["misses"])


def test_evaluation_scores_each_explainer_on_the_same_pairs_and_names_the_winners():
    from lvlm_heat import ExplainConfig, Explainer, OptimConfig
    from lvlm_heat.demo.evaluate import evaluate

    config = ExplainConfig(method="igos,grid", optim=OptimConfig(iterations=1, ig_iter=2, mask_size=4, curve_steps=4))
    row = evaluate(Explainer("demo", device="cpu", config=config), "heldout", pairs=4)
    igos, grid = row["methods"]["igos"], row["methods"]["grid"]
    assert igos["pointing_game"] == row["pointing_game"] and igos["median_box_mass"] == row["median_box_mass"]
    assert grid["mean_passes"] == 65 and 0 <= grid["pointing_game"] <= 1
    versus = row["versus"]["grid"]
    assert set(versus) == {"deletion_auc", "insertion_auc", "on_target", "box_mass", "on_other"}
    for figure in versus.values():
        difference = figure["difference"]
        assert difference["n"] == row["with_map"] and difference["low"] <= difference["mean"] <= difference["high"]
        holds_zero = difference["low"] <= 0 <= difference["high"]
        assert (figure["winner"] in ("igos", "grid")) != holds_zero


def test_the_demo_evaluation_reports_an_instrument_beside_the_demo_sets(capsys):
    """``lvlm-heat demo --splits '[heldout, textured]'``: the instrument scored as ``lvlm-heat instruments`` scores
    it, every peak placed by the same rule."""
    from lvlm_heat import ExplainConfig, ModelConfig, OptimConfig
    from lvlm_heat.demo.evaluate import run_evaluation
    from lvlm_heat.demo.scoring import placement

    config = ExplainConfig(optim=OptimConfig(iterations=1, ig_iter=2, mask_size=4, curve_steps=4))
    demo, textured = run_evaluation(ModelConfig(device="cpu"), ["heldout", "textured"], pairs=2, explain=config)
    assert demo["split"] == "heldout" and textured["instrument"] == "textured"
    assert textured["pairs"] == 2 and 0 <= textured["grounded"] <= 2 and "object_ceiling" in textured
    assert "textured igos" in capsys.readouterr().out
    saliency = np.zeros((8, 8), np.float32)
    saliency[1, 6] = 1.0
    assert placement(saliency, (0, 0, 4, 4), ((4, 0, 8, 4),)) == {"on_target": False, "on_other": True,
                                                                  "box_mass": 0.0}
