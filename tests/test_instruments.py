"""The grounded instruments: scenes built apart from the demo's generator, their boxes, paint-out and figures."""

import numpy as np
import pytest
import torch
from PIL import Image

from lvlm_heat.demo.evaluate import make_pair
from lvlm_heat.demo.instruments import (
    INSTRUMENTS,
    SIZES,
    baseline_drops,
    describe,
    make_instrument_pair,
    object_drops,
    summarise,
)
from lvlm_heat.demo.synthetic import COLORS, HELDOUT_SEED, Scene, askable, make_scene


@pytest.fixture
def one_thread():
    """One torch thread: on a shared 2-core machine several times faster than two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _background_mean(image, boxes) -> float:
    """Mean brightness of the pixels outside every box."""
    pixels = np.asarray(image).astype(float)
    outside = np.ones(pixels.shape[:2], dtype=bool)
    for left, top, right, bottom in boxes:
        outside[top:bottom, left:right] = False
    return float(pixels[outside].mean())


@pytest.mark.parametrize("name", INSTRUMENTS)
def test_pairs_are_pure_functions_of_the_index_and_boxes_lie_on_the_object(name):
    for index in range(8):
        pair = make_instrument_pair(name, index)
        again = make_instrument_pair(name, index)
        assert again.image.tobytes() == pair.image.tobytes() and again.qa == pair.qa and again.others == pair.others
        assert pair.image.size == (SIZES[name], SIZES[name])
        left, top, right, bottom = pair.target
        assert 0 <= left < right <= SIZES[name] and 0 <= top < bottom <= SIZES[name]
        centre = np.asarray(pair.image)[(top + bottom) // 2 + (bottom - top) // 4, (left + right) // 2]
        expected = np.array(COLORS[pair.qa.target.color])
        assert np.abs(centre.astype(int) - expected).max() <= 15, (name, index)  # the fill is jittered by 15
        assert pair.qa.question in (f"What color is the {pair.qa.target.shape}?",
                                    f"What shape is the {pair.qa.target.color} object?")
        assert pair.qa.answer.split()[-1] in (pair.qa.target.color, pair.qa.target.shape)


def test_instruments_differ_from_the_demo_generator():
    demo = [make_scene(HELDOUT_SEED, 20_000 + i) for i in range(10)]
    demo_extents = {o.box[2] - o.box[0] for scene in demo for o in scene.objects}
    assert min(demo_extents) >= 28 and max(demo_extents) <= 40
    assert max(_background_mean(s.image, [o.box for o in s.objects]) for s in demo) < 170  # mid-grey
    for name in INSTRUMENTS:
        pairs = [make_instrument_pair(name, i) for i in range(10)]
        assert min(_background_mean(p.image, [p.target, *p.others]) for p in pairs) > 175, name  # light
    extents = {name: [o.box[2] - o.box[0] for i in range(20) for o in make_instrument_pair(name, i).scene.objects]
               for name in INSTRUMENTS}
    assert min(extents["textured"]) >= 28 and max(extents["textured"]) > 40
    assert min(extents["small_large"]) < 20 and max(extents["small_large"]) > 64
    assert all(len(make_instrument_pair("distractors", i).scene.objects) >= 4 for i in range(20))
    assert make_pair("heldout", 0).image.size == (128, 128) and SIZES["textured"] == 160


def test_distractors_share_the_answer_and_touch_the_target():
    for index in range(10):
        pair = make_instrument_pair("distractors", index)
        target = pair.qa.target
        kind = "color" if index % 2 == 0 else "shape"
        assert askable(Scene(pair.image, pair.scene.objects), kind) == [target]  # only the target is nameable
        answer = (lambda o: o.color) if kind == "color" else (lambda o: o.shape)
        assert sum(answer(o) == answer(target) for o in pair.scene.objects if o is not target) >= 2
        assert pair.target_index == len(pair.scene.objects) - 1  # drawn on top
        gaps = [max(max(b[0] - pair.target[2], pair.target[0] - b[2]), max(b[1] - pair.target[3], pair.target[1] - b[3]))
                for b in pair.others]
        assert min(gaps) <= 1, index  # one box touches or overlaps the target's


@pytest.mark.parametrize("name", INSTRUMENTS)
def test_painting_out_removes_the_queried_object_and_nothing_outside_its_box(name):
    pair = make_instrument_pair(name, 1)
    painted = pair.painted_out()
    assert len(painted) == 1 + len(pair.others)
    image, without = np.asarray(pair.image).astype(int), np.asarray(painted[0]).astype(int)
    left, top, right, bottom = pair.target
    inside = np.zeros(image.shape[:2], dtype=bool)
    inside[top:bottom, left:right] = True
    assert np.array_equal(image[~inside], without[~inside])
    row, col = (top + bottom) // 2 + (bottom - top) // 4, (left + right) // 2
    assert np.abs(without[row, col] - np.array(COLORS[pair.qa.target.color])).max() > 40
    if name != "distractors":  # objects apart: the hole shows the background itself
        assert np.array_equal(without[top:bottom, left:right], pair.scene.background[top:bottom, left:right])


def test_object_drops_find_the_object_the_demo_model_reads(one_thread):
    from lvlm_heat import Explainer

    adapter = Explainer("demo", device="cpu").adapter
    drops = object_drops(adapter, make_instrument_pair("textured", 1))  # yellow triangle, two other objects
    assert len(drops) == 3 and drops[0] > 4 and max(abs(d) for d in drops[1:]) < 0.5


@pytest.mark.parametrize("name", INSTRUMENTS)
def test_deleting_an_object_replaces_exactly_its_pixels_by_the_baseline(name):
    pair = make_instrument_pair(name, 3)
    baseline = Image.new("RGB", pair.image.size, (1, 2, 3))
    image, deleted = np.asarray(pair.image), [np.asarray(d) for d in pair.deleted(baseline)]
    order = [pair.target_index, *(k for k in range(len(pair.scene.objects)) if k != pair.target_index)]
    assert len(deleted) == len(order) == len(pair.others) + 1
    for number, out in zip(order, deleted):
        where = (image != np.asarray(pair.scene.render(without=number))).any(-1)  # the pixels the object covers
        assert where.any() and (out[where] == (1, 2, 3)).all()
        assert np.array_equal(out[~where], image[~where])
        left, top, right, bottom = pair.scene.objects[number].box
        assert not where[:top].any() and not where[:, :left].any()  # inside the object's box
        assert not where[bottom + 1 :].any() and not where[:, right + 1 :].any()


def test_baseline_drops_see_the_object_the_demo_model_reads(one_thread):
    from lvlm_heat import Explainer
    from lvlm_heat.baseline import make_baseline

    adapter = Explainer("demo", device="cpu").adapter
    pair = make_instrument_pair("textured", 1)  # yellow triangle, two other objects
    word_llr, drops = baseline_drops(adapter, pair, make_baseline(pair.image))
    assert word_llr > 4 and len(drops) == 3 and drops[0] > 4 and max(abs(d) for d in drops[1:]) < 0.5
    same, none = baseline_drops(adapter, pair, pair.image)  # the image as its own baseline: nothing drops
    assert same == pytest.approx(0, abs=1e-4) and none == pytest.approx([0, 0, 0], abs=1e-4)


def test_summary_counts_and_means():
    def row(grounded, hit, maps, baseline_hit=None):
        return {"grounded": grounded, "ceiling_hit": hit, "maps": maps,
                "baseline_hit": hit if baseline_hit is None else baseline_hit}

    igos = {"on_target": True, "on_other": False, "box_mass": 0.5, "deletion_auc": 0.2, "insertion_auc": 0.8,
            "unstable": False}
    miss = {"on_target": False, "on_other": True, "box_mass": 0.1, "deletion_auc": 0.4, "insertion_auc": 0.6,
            "unstable": False}
    unstable = {**igos, "deletion_auc": 9.0, "insertion_auc": 30.0, "unstable": True}
    details = [row(True, True, {"igos": igos, "superpixel": igos}), row(True, False, {"igos": miss}),
               row(True, True, {"superpixel": miss}, baseline_hit=False), row(False, False, {}),
               row(True, True, {"igos": unstable})]
    result = summarise("textured", details, ["igos", "superpixel"])
    assert (result["pairs"], result["grounded"], result["ceiling_hits"], result["baseline_hits"]) == (5, 4, 3, 2)
    assert result["object_ceiling"] == pytest.approx(3 / 4) and result["baseline_ceiling"] == pytest.approx(2 / 4)
    assert "object ceiling 3/4 (0.750); as the mask deletes (to the baseline) 2/4 (0.500)" in describe(result)[0]
    first, second = result["methods"]["igos"], result["methods"]["superpixel"]
    assert (first["maps"], first["on_target"], first["on_other"], first["unstable"]) == (3, 2, 1, 1)
    assert first["pointing_game"] == pytest.approx(2 / 4) and first["peak_on_other"] == pytest.approx(1 / 3)
    assert first["mean_box_mass"] == pytest.approx(1.1 / 3)  # every map
    assert first["mean_deletion_auc"] == pytest.approx(0.3)  # the unstable map's AUCs are left out of the means
    assert first["median_insertion_auc"] == pytest.approx(0.8)  # ... and kept in the medians
    assert second["mean_insertion_auc"] == pytest.approx(0.7)
    assert second["intervals"]["box_mass"]["difference"]["n"] == 1  # paired on the one pair both mapped
    assert second["intervals"]["box_mass"]["difference"]["mean"] == pytest.approx(0.0)


@pytest.mark.parametrize("name", INSTRUMENTS)
def test_evaluate_instrument_returns_consistent_counts(name, one_thread):
    from lvlm_heat import ExplainConfig, Explainer, OptimConfig
    from lvlm_heat.demo.instruments import evaluate_instrument

    config = ExplainConfig(method="igos,superpixel",
                           optim=OptimConfig(iterations=1, ig_iter=2, mask_size=4, curve_steps=4))
    result = evaluate_instrument(Explainer("demo", device="cpu", config=config), name, pairs=3)
    assert result["pairs"] == 3 == len(result["details"])
    assert result["ceiling_hits"] <= result["grounded"] <= 3
    assert result["grounded"] == sum(d["drops"][0] > 1 for d in result["details"])
    for figures in result["methods"].values():
        assert figures["on_target"] + figures["on_other"] <= figures["maps"] <= result["grounded"]
    assert set(result["methods"]) == {"igos", "superpixel"}


def test_command_line_parses_into_the_function():
    from lvlm_heat.cli import parse
    from lvlm_heat.demo.instruments import run_instruments

    options = parse(["--instrument", "textured", "--pairs", "4", "--method", "igos,superpixel", "--threads", "1",
                     "--randomised", "true"], run_instruments, "python -m lvlm_heat.demo.instruments")
    assert options["instrument"] == "textured" and options["pairs"] == 4 and options["threads"] == 1
    assert options["randomised"] is True
    assert options["explain"].methods == ["igos", "superpixel"] and options["model"].model == "demo"
    assert options["explain"].occlusion.superpixel_fill == "flat"


def test_randomised_model_maps_are_scored_against_chance_and_the_weights_come_back(one_thread):
    from lvlm_heat import ExplainConfig, Explainer, OptimConfig
    from lvlm_heat.demo.instruments import evaluate_randomised

    config = ExplainConfig(method="igos,superpixel",
                           optim=OptimConfig(iterations=1, ig_iter=2, mask_size=4, curve_steps=4))
    explainer = Explainer("demo", device="cpu", config=config)
    weights = {name: p.detach().clone() for name, p in explainer.adapter.model.named_parameters()}
    drops = object_drops(explainer.adapter, make_instrument_pair("textured", 1))
    result = evaluate_randomised(explainer, "textured", pairs=3)
    assert all(torch.equal(p, weights[name]) for name, p in explainer.adapter.model.named_parameters())
    assert object_drops(explainer.adapter, make_instrument_pair("textured", 1)) == drops
    assert explainer.config is config  # the per-pair selection is put back
    assert result["randomised"] == "igos" and result["pairs"] == 3 == len(result["details"]) == result["maps"]
    for row in result["details"]:  # chance: the share of the scene's objects whose box holds the peak
        objects = len(make_instrument_pair("textured", row["index"]).others) + 1
        assert row["on_random_object"] * objects == pytest.approx(round(row["on_random_object"] * objects))
        assert row["on_random_object"] >= row["on_target"] / objects
    assert result["on_target"] == pytest.approx(sum(r["on_target"] for r in result["details"]) / 3)
    assert result["difference"]["mean"] == pytest.approx(result["on_target"] - result["on_random_object"])


def test_the_default_run_leaves_out_the_tuning_instrument_and_all_takes_it():
    import inspect

    from lvlm_heat.demo.instruments import TUNING, UNTOUCHED, run_instruments

    assert inspect.signature(run_instruments).parameters["instrument"].default == "untouched"
    assert TUNING in INSTRUMENTS and TUNING not in UNTOUCHED and set(UNTOUCHED) | {TUNING} == set(INSTRUMENTS)


def test_randomisation_changes_what_the_model_answers(one_thread):
    """The check must randomise the model the maps are drawn from: the answer word's drop for painting out the
    object it reads (6.6 nats on the trained model) is gone."""
    from lvlm_heat import Explainer
    from lvlm_heat.demo.instruments import RANDOMISATION_SEED
    from lvlm_heat.sanity.randomisation import WeightSnapshot, randomise_

    adapter = Explainer("demo", device="cpu").adapter
    pair = make_instrument_pair("textured", 1)
    with WeightSnapshot(adapter.model).kept():
        randomise_(list(adapter.model.parameters()), torch.Generator().manual_seed(RANDOMISATION_SEED))
        drops = object_drops(adapter, pair)
    assert abs(drops[0]) < 1 and object_drops(adapter, pair)[0] > 4
