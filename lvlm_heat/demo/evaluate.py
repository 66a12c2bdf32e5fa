"""Where the explainer puts the peak on grounded demo pairs: ``lvlm-heat demo``.

The demo task knows where the evidence is: a question names one object and only the answer word
about it ("red" in "the circle is red") depends on the image. A pair counts as *grounded* when
the model proves it: painting the queried object out (background colour) drops the answer word's
probability below half its value on the image, while painting out another object leaves it above
that. On grounded pairs the peak of a correct heatmap lies on the queried object.

Sets, generated on the fly from the held-out stream (never the demo models' training stream):

- ``heldout``: 128 x 128 scenes, as the models were trained;
- ``large``: the same scenes upscaled to 512 x 512 (the processors scale them back down);
- ``wide`` / ``tall``: the scene pasted at a random place of a 256 x 128 / 128 x 256 textured canvas;
- ``crowded``: four objects instead of two or three.

Printed per set: pairs, grounded pairs, pairs with a map, where the peak lies (queried object,
another object, background) over grounded pairs, whether the answer word was selected, whether a
filler word was, and the AUCs. With several explainers (``--method igos,superpixel,gradient``) each
one's figures follow on the same pairs, under ``methods`` in the JSON. The last line is one JSON object.

``--splits`` may also name the instruments of :mod:`lvlm_heat.demo.instruments` (scenes from other generators,
each with its causal ceiling: ``tuning``, the one settings are chosen on, and three never used for a choice):
``--splits '[heldout, tuning, textured, small_large, distractors]'`` reports the demo's own set and every
instrument in one run.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
from PIL import Image

from lvlm_heat.config import ExplainConfig, ModelConfig
from lvlm_heat.demo.scoring import placement, word_probabilities
from lvlm_heat.demo.synthetic import (
    HELDOUT_SEED,
    SCENE_SIZE,
    GroundedQuestion,
    Scene,
    _background,
    ask,
    make_scene,
    paint_out,
)
from lvlm_heat.metrics.statistics import paired_difference

Split = Literal["heldout", "large", "wide", "tall", "crowded"]
Instrument = Literal["tuning", "textured", "small_large", "distractors"]
"""The grounded instruments of :mod:`lvlm_heat.demo.instruments`, which ``lvlm-heat demo --splits`` may name too."""
FILLER = frozenset({"the", "is", "a", "object"})
FIRST_INDEX = 20_000  # apart from the slow test's held-out pairs (10 000 on)


@dataclass(frozen=True)
class GroundedPair:
    """A scene, its question, and the boxes of the queried object and of the others."""

    image: Image.Image
    qa: GroundedQuestion
    target: tuple[int, int, int, int]
    others: tuple[tuple[int, int, int, int], ...]


def _moved(scene: Scene, qa: GroundedQuestion, image: Image.Image, dx: int, dy: int, scale: float) -> GroundedPair:
    def box(b: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        return tuple(round(v * scale) + d for v, d in zip(b, (dx, dy, dx, dy)))

    others = tuple(box(o.box) for o in scene.objects if o is not qa.target)
    return GroundedPair(image, qa, box(qa.target.box), others)


def make_pair(split: Split, index: int, first_index: int = FIRST_INDEX) -> GroundedPair:
    """Pair ``index`` of ``split``, scene ``first_index + index`` of the held-out stream (a pure function of all three)."""
    seed, number = HELDOUT_SEED, first_index + index
    scene = make_scene(seed, number, SCENE_SIZE, **({"min_objects": 4, "max_objects": 4} if split == "crowded" else {}))
    qa = ask(scene, seed, number, kind="color" if index % 2 == 0 else "shape")
    if split == "large":
        return _moved(scene, qa, scene.image.resize((512, 512), Image.Resampling.BICUBIC), 0, 0, 4.0)
    if split in ("wide", "tall"):
        rng = np.random.default_rng([seed, number, 7])
        canvas = Image.fromarray(_background(rng, 2 * SCENE_SIZE))
        width, height = (2 * SCENE_SIZE, SCENE_SIZE) if split == "wide" else (SCENE_SIZE, 2 * SCENE_SIZE)
        canvas = canvas.crop((0, 0, width, height))
        dx, dy = (int(rng.integers(0, SCENE_SIZE + 1)), 0) if split == "wide" else (0, int(rng.integers(0, SCENE_SIZE + 1)))
        canvas.paste(scene.image, (dx, dy))
        return _moved(scene, qa, canvas, dx, dy, 1.0)
    return _moved(scene, qa, scene.image, 0, 0, 1.0)


def is_grounded(adapter, pair: GroundedPair) -> bool:
    """Painting the queried object out halves the word's probability; painting any other out does not."""
    boxes = [pair.target, *pair.others]
    image, without_target, *without_others = word_probabilities(
        adapter, pair, [pair.image, paint_out(pair.image, pair.target, boxes),
                        *(paint_out(pair.image, box, boxes) for box in pair.others)])
    return without_target < 0.5 * image and all(p >= 0.5 * image for p in without_others)


def evaluate(
    explainer, split: Split, pairs: int, explain_model_answer: bool = False, first_index: int = FIRST_INDEX
) -> dict[str, Any]:
    """Explain ``pairs`` pairs of ``split`` and say where the peaks lie.

    Args:
        explainer: A :class:`lvlm_heat.api.Explainer`.
        split: Which set.
        pairs: How many pairs to draw (grounded or not).
        explain_model_answer: Explain the model's own answer instead of the scene's (the scene's
            answer is the grounded one; the demo models answer it correctly almost always).
        first_index: Scene number of pair 0 in the held-out stream (tune on one range, report on another).
    """
    counts = {"pairs": 0, "grounded": 0, "with_map": 0, "on_target": 0, "on_other": 0, "on_background": 0,
              "word_selected": 0, "filler_selected": 0}
    deletion, insertion, masses, misses = [], [], [], []
    found: dict[str, list[dict[str, Any]]] = {}  # per explainer, per grounded pair with a map
    for index in range(pairs):
        pair = make_pair(split, index, first_index)
        counts["pairs"] += 1
        if not is_grounded(explainer.adapter, pair):
            continue
        counts["grounded"] += 1
        answer = None if explain_model_answer else pair.qa.answer
        result = explainer.explain(pair.image, pair.qa.question, answer)
        word = pair.qa.answer.split()[-1]
        selected = {t.text.strip(): t.selected for t in result.tokens if not t.special}
        counts["word_selected"] += bool(selected.get(word))
        counts["filler_selected"] += any(selected.get(w) for w in FILLER)
        miss = {"index": index, "question": pair.qa.question, "answer": pair.qa.answer}
        if result.saliency is None:
            misses.append({**miss, "peak": None, "status": result.status})
            continue
        counts["with_map"] += 1
        placed = placement(result.saliency, pair.target, pair.others)
        place = "on_target" if placed["on_target"] else "on_other" if placed["on_other"] else "on_background"
        counts[place] += 1
        if place != "on_target":
            misses.append({**miss, "peak": place.removeprefix("on_"), "status": result.status})
        deletion.append(result.deletion_auc)
        insertion.append(result.insertion_auc)
        masses.append(placed["box_mass"])
        for method in result.methods:
            found.setdefault(method.method, []).append(_placed(method, pair, result.unstable))
    grounded = max(counts["grounded"], 1)
    return {
        "split": split,
        **counts,
        "pointing_game": counts["on_target"] / grounded,  # over grounded pairs: a missing map is a miss
        "peak_on_other": counts["on_other"] / grounded,
        "word_selected_share": counts["word_selected"] / grounded,
        "median_deletion_auc": statistics.median(deletion) if deletion else None,
        "median_insertion_auc": statistics.median(insertion) if insertion else None,
        "median_box_mass": statistics.median(masses) if masses else None,  # share of the saliency in the box
        "misses": misses,  # grounded pairs whose peak is off the queried object, or without a map
        "methods": {name: _method_row(rows, grounded) for name, rows in found.items()},
        "versus": _versus(found),
    }


BETTER = {"deletion_auc": "lower", "insertion_auc": "higher", "on_target": "higher", "box_mass": "higher",
          "on_other": "lower"}
"""The figures two explainers are compared on, and which direction is better."""


def _versus(found: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """The first explainer against each other one on the same pairs: per figure, the paired difference
    (other - first) with its 95% bootstrap interval, and the winner where the interval leaves out 0."""
    names = list(found)
    out = {}
    for other in names[1:]:
        first, second = names[0], other
        figures = {}
        for key, better in BETTER.items():
            difference = paired_difference([r[key] for r in found[second]], [r[key] for r in found[first]])
            if difference.count == 0 or difference.low <= 0 <= difference.high:
                winner = "neither (the interval holds 0)"
            else:
                winner = second if (difference.mean < 0) == (better == "lower") else first
            figures[key] = {"difference": difference.to_dict(), "better": better, "winner": winner}
        out[second] = figures
    return out


def _placed(method: Any, pair: GroundedPair, unstable: bool) -> dict[str, Any]:
    """Where one explainer's peak lies on a pair (:func:`placement`), its AUCs (``None`` when the pair's
    normalisation is unstable, as the run's means leave them out) and cost."""
    return {**placement(method.saliency, pair.target, pair.others),
            "deletion_auc": None if unstable else method.deletion.auc,
            "insertion_auc": None if unstable else method.insertion.auc, "passes": method.passes,
            "seconds": method.seconds}


def _method_row(rows: list[dict[str, Any]], grounded: int) -> dict[str, Any]:
    """One explainer's figures over a set's grounded pairs (a pair without a map counts as a miss)."""

    def median(key: str) -> float | None:
        values = [r[key] for r in rows if r[key] is not None]
        return statistics.median(values) if values else None

    return {"pointing_game": sum(r["on_target"] for r in rows) / grounded,
            "peak_on_other": sum(r["on_other"] for r in rows) / grounded,
            "median_deletion_auc": median("deletion_auc"), "median_insertion_auc": median("insertion_auc"),
            "median_box_mass": median("box_mass"), "mean_passes": statistics.fmean(r["passes"] for r in rows),
            "mean_seconds": statistics.fmean(r["seconds"] for r in rows)}


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def run_evaluation(
    model: ModelConfig = ModelConfig(device="cpu"),
    splits: list[Split | Instrument] | None = None,
    pairs: int = 40,
    explain_model_answer: bool = False,
    explain: ExplainConfig | None = None,
    first_index: int = FIRST_INDEX,
) -> list[dict[str, Any]]:
    """Localisation of the explainer on grounded demo sets.

    Args:
        model: A demo model (``--model demo``, ``demo-qwen2-vl``, ``demo-llava-l2``) or a checkpoint trained on the
            demo task (the model flags of ``lvlm-heat explain``; the CPU by default).
        splits: Sets to evaluate (default: every demo set); an instrument's name (``tuning``, ``textured``,
            ``small_large``, ``distractors``) adds that instrument, scored as ``lvlm-heat instruments`` scores it
            (its own pairs from 0, the causal ceiling, every explainer against the first).
        pairs: Pairs drawn per set (only the grounded ones are explained).
        explain_model_answer: Explain the model's own answer instead of the scene's.
        explain: The explanation settings (the flags of ``lvlm-heat explain``: ``--optim.iterations``, ...).
        first_index: Scene number of pair 0 in the held-out stream: tune on one range (e.g. 30 000), confirm
            on others (20 000, the default, and 40 000); the slow test's pairs start at 10 000.
    """
    from lvlm_heat.api import Explainer

    explainer = Explainer(model, config=explain or ExplainConfig())
    results = []
    for split in splits or ["heldout", "large", "wide", "tall", "crowded"]:
        if split in get_args(Instrument):
            from lvlm_heat.demo.instruments import describe, evaluate_instrument

            row = evaluate_instrument(explainer, split, pairs)
            print("\n".join(describe(row)), flush=True)
            results.append(row)
            continue
        row = evaluate(explainer, split, pairs, explain_model_answer, first_index)
        medians = ", ".join(f"{name} {_fmt(row[f'median_{key}'])}" for name, key in (
            ("deletion AUC", "deletion_auc"), ("insertion AUC", "insertion_auc"), ("box mass", "box_mass")))
        print(f"{model.model} {split}: {row['grounded']}/{row['pairs']} grounded, {row['with_map']} with a map; peak on "
              f"the object {row['pointing_game']:.0%}, on another object {row['peak_on_other']:.0%}; word selected "
              f"{row['word_selected_share']:.0%}, filler selected {row['filler_selected']}; medians: {medians}",
              flush=True)
        for name, figures in row["methods"].items() if len(row["methods"]) > 1 else ():
            print(f"  {name:<11} peak on the object {figures['pointing_game']:.0%}, on another "
                  f"{figures['peak_on_other']:.0%}; medians: deletion AUC {_fmt(figures['median_deletion_auc'])}, "
                  f"insertion AUC {_fmt(figures['median_insertion_auc'])}, box mass {_fmt(figures['median_box_mass'])}; "
                  f"{figures['mean_passes']:.0f} passes, {figures['mean_seconds']:.2f} s per map", flush=True)
        first = next(iter(row["methods"]), None)
        for other, figures in row["versus"].items():
            print(f"  {first} vs {other} (paired, 95% interval of {other} - {first}): " + "; ".join(
                f"{key} {f['difference']['mean']:+.3f} [{f['difference']['low']:+.3f}, {f['difference']['high']:+.3f}] "
                f"({f['better']} is better): {f['winner']}" for key, f in figures.items()), flush=True)
        for miss in row["misses"]:
            where = f"peak on {miss['peak']}" if miss["peak"] else f"no map ({miss['status']})"
            print(f"  miss: pair {miss['index']}, {miss['question']!r} -> {miss['answer']!r}: {where}", flush=True)
        results.append(row)
    print(json.dumps(results))
    return results
