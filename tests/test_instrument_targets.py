"""Issue 22's targets, asserted at the default settings on the instruments no setting was chosen on.

One evaluation per instrument (the demo LLaVA, pairs 0-39, the default mask beside superpixel occlusion with
the median fill, then the default mask on the same pairs with every weight randomised) feeds every test of
that instrument. The targets the default does not meet yet are strict ``xfail``s: they run, and the day a
change meets one, its test fails as XPASS until the mark comes off. EXPERIMENTS.md has the figures.
"""

import pytest
import torch

from lvlm_heat.demo.instruments import UNTOUCHED, evaluate_instrument, evaluate_randomised

pytestmark = pytest.mark.slow

PAIRS = 40
# (instrument, target) pairs the default settings miss today, with the figure measured at PAIRS pairs
MISSED = {
    ("small_large", "peak"): "peak on the object 27/31 (0.87) against a ceiling of 0.84",
    ("distractors", "peak"): "peak on the object 24/27 (0.89) against a ceiling of 1.00",
    ("small_large", "peak_on_other"): "peak on another object in 3/30 maps",
    ("distractors", "peak_on_other"): "peak on another object in 3/27 maps",
    ("small_large", "box_mass"): "mean box mass 0.74",
}


def _cases(target: str) -> list:
    return [pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=MISSED[name, target]))
            if (name, target) in MISSED else name for name in UNTOUCHED]


@pytest.fixture(scope="module")
def explainer():
    from lvlm_heat import ExplainConfig, Explainer
    from lvlm_heat.config import OcclusionConfig

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # several times faster than two on a shared 2-core machine
    config = ExplainConfig(method="igos,superpixel", occlusion=OcclusionConfig(superpixel_fill="median"))
    yield Explainer("demo", device="cpu", config=config)
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def measured(explainer):
    cache: dict[str, dict] = {}

    def get(name: str) -> dict:
        if name not in cache:
            cache[name] = evaluate_instrument(explainer, name, PAIRS)
        return cache[name]

    return get


@pytest.fixture(scope="module")
def randomised(explainer):
    cache: dict[str, dict] = {}

    def get(name: str) -> dict:
        if name not in cache:
            cache[name] = evaluate_randomised(explainer, name, PAIRS)
        return cache[name]

    return get


@pytest.mark.parametrize("name", UNTOUCHED)
def test_maps_for_the_causally_grounded_pairs(name, measured):
    result = measured(name)
    assert result["grounded"] >= 0.6 * PAIRS  # the instrument measures something
    assert result["methods"]["igos"]["maps"] >= 0.95 * result["grounded"]


@pytest.mark.parametrize("name", _cases("peak"))
def test_peak_on_the_queried_object(name, measured):
    result = measured(name)
    pointing = result["methods"]["igos"]["pointing_game"]
    assert pointing >= 0.95 and pointing >= result["object_ceiling"] - 0.03


@pytest.mark.parametrize("name", _cases("peak_on_other"))
def test_peak_on_another_object(name, measured):
    assert measured(name)["methods"]["igos"]["peak_on_other"] <= 0.05


@pytest.mark.parametrize("name", _cases("box_mass"))
def test_mass_in_the_box(name, measured):
    assert measured(name)["methods"]["igos"]["mean_box_mass"] >= 0.75


@pytest.mark.parametrize("name", UNTOUCHED)
def test_curves_no_worse_than_superpixel_occlusion(name, measured):
    """Paired over the stable maps: superpixel occlusion is not significantly better on either AUC."""
    intervals = measured(name)["methods"]["superpixel"]["intervals"]
    deletion, insertion = intervals["deletion_auc"]["difference"], intervals["insertion_auc"]["difference"]
    assert deletion["n"] >= 0.8 * measured(name)["grounded"]
    assert deletion["high"] >= 0  # superpixel minus igos: lower deletion is better
    assert insertion["low"] <= 0  # higher insertion is better


@pytest.mark.parametrize("name", UNTOUCHED)
def test_randomised_model_maps_stay_at_chance(name, randomised, measured):
    chance = randomised(name)
    difference = chance["difference"]
    assert chance["maps"] >= 0.95 * PAIRS
    assert difference["low"] <= 0 <= difference["high"] and abs(difference["mean"]) < 0.15
    assert measured(name)["methods"]["igos"]["pointing_game"] > chance["on_target"] + 0.2  # the trained model is not
