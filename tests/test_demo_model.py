"""The shipped demo model, explained on held-out scenes: the heatmap is where the evidence is.

The demo model answers "What color is the circle?" with "the circle is red": only the
colour word depends on the image, and the queried object's box is known.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lvlm_heat import Explainer
from lvlm_heat.cli import parse
from lvlm_heat.demo import DEMO_MODELS
from lvlm_heat.demo.synthetic import COLOR_NAMES, HELDOUT_SEED, SCENE_SIZE, SHAPES, ask, make_scene

pytestmark = pytest.mark.slow  # minutes: 30 held-out pairs explained with each demo model

PAIRS = 30
FILLER = {"the", "is", "a", "object"}
PRESET = Path(__file__).parents[1] / "configs" / "demo.yaml"


@pytest.fixture(scope="module", params=sorted(DEMO_MODELS))
def explainer(request):
    folder = DEMO_MODELS[request.param]
    if not (folder / "config.json").exists():
        pytest.fail(f"the demo model is missing from {folder}: rebuild it with python -m lvlm_heat.demo.build")
    config = parse(["--config", str(PRESET)])["explain"]  # what `--config configs/demo.yaml` runs
    return Explainer(request.param, device="cpu", precision="fp32", config=config)


def test_demo_heatmaps_point_at_the_queried_object(explainer):
    hits, image_words, fillers, deletion, insertion, skipped = [], [], [], [], [], 0
    for index in range(PAIRS):
        scene = make_scene(HELDOUT_SEED, 10_000 + index, SCENE_SIZE)
        qa = ask(scene, HELDOUT_SEED, 10_000 + index, kind="color" if index % 2 == 0 else "shape")
        result = explainer.explain(scene.image, qa.question, pair_id=f"heldout_{index}")
        words = {t.text.strip(): t.selected for t in result.tokens if not t.special}
        key = qa.target.color if qa.kind == "color" else qa.target.shape
        image_words.append(words.get(key, False))
        fillers.extend(selected for word, selected in words.items() if word in FILLER)
        if result.status != "explained":
            skipped += 1
            hits.append(False)
            continue
        row, col = np.unravel_index(result.saliency.argmax(), result.saliency.shape)
        left, top, right, bottom = qa.target.box
        hits.append(left <= col < right and top <= row < bottom)
        deletion.append(result.deletion_auc)
        insertion.append(result.insertion_auc)
    pointing = float(np.mean(hits))
    print(
        f"\n{explainer.adapter.name}, {PAIRS} held-out pairs: pointing game {pointing:.0%}, "
        f"image word selected {np.mean(image_words):.0%}, filler selected {np.mean(fillers):.0%}, "
        f"deletion AUC {np.mean(deletion):.3f}, insertion AUC {np.mean(insertion):.3f}, not grounded {skipped}"
    )
    assert pointing >= 0.8
    assert np.mean(image_words) >= 0.9
    assert not any(fillers)
    assert np.mean(deletion) < np.mean(insertion)


def test_demo_vocabulary_covers_the_task(explainer):
    tokenizer = explainer.adapter.tokenizer
    for word in (*SHAPES, *COLOR_NAMES):
        assert tokenizer.convert_tokens_to_ids(word) != tokenizer.unk_token_id
