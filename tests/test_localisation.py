"""At the default settings, the peak lands on the evidence in at least 95% of grounded demo pairs.

Grounded pairs (``lvlm_heat.demo.evaluate``): painting the queried object out halves the answer
word's probability, painting any other object out does not. Scenes from 80 000 on of the held-out
stream, a range no setting was tuned or measured on (EXPERIMENTS.md used 20 000 to 60 000).
"""

from __future__ import annotations

import pytest

from lvlm_heat import Explainer
from lvlm_heat.demo.evaluate import evaluate

pytestmark = pytest.mark.slow  # minutes: about 130 pairs explained with the two demo models

FIRST = 80_000
SETS = {  # model: (sets, pairs drawn per set); Qwen2-VL, the slower model, on three sets for time
    "demo": (["heldout", "large", "wide", "tall", "crowded"], 16),
    "demo-qwen2-vl": (["heldout", "large", "crowded"], 12),
}


@pytest.mark.parametrize("model", sorted(SETS))
def test_default_settings_put_the_peak_on_the_queried_object(model):
    sets, pairs = SETS[model]
    explainer = Explainer(model, device="cpu")
    rows = [evaluate(explainer, split, pairs, first_index=FIRST) for split in sets]
    grounded = sum(r["grounded"] for r in rows)
    on_target = sum(r["on_target"] for r in rows)
    selected = sum(r["word_selected"] for r in rows)
    fillers = sum(r["filler_selected"] for r in rows)
    misses = [(r["split"], m["index"], m["peak"] or m["status"]) for r in rows for m in r["misses"]]
    print(f"\n{model}, default settings, scenes {FIRST} on: peak on the queried object {on_target}/{grounded} "
          f"({on_target / grounded:.0%}), answer word selected {selected}/{grounded}, filler selected {fillers}; "
          f"misses {misses}")
    assert grounded >= 0.6 * len(sets) * pairs  # the sets are the task's: most pairs are grounded
    assert on_target >= 0.95 * grounded
    assert selected >= 0.95 * grounded
    assert fillers == 0
