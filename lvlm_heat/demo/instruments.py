"""Grounded instruments: scene sets built apart from the demo's generator, each with its causal ceiling.

Figures measured on scenes from the generator the settings were chosen on do not carry over (issue 22).
An *instrument* is a set of grounded pairs made by another generator, never used to choose a setting,
that ships the figure a map is measured against: its *object-level ceiling*. Each object of a scene is
painted out in turn (the scene is drawn again without it, so the hole shows exactly the background
behind it); the object whose removal drops ``log p`` of the answer word most is the one the model uses.

- A pair is *causally grounded* when painting out the queried object drops ``log p(answer word)`` by more
  than :data:`GROUNDED_DROP` nats.
- Its *ceiling hit*: the queried object is the object whose painting-out drops ``log p`` most. The share
  of ceiling hits among causally grounded pairs is as high as a pointing figure can honestly be.
- Its *baseline hit*: the same, when each object's pixels are replaced by the baseline B the mask deletes to
  (the blur, not the background behind the object), and the word depends on the image against B (``log p``
  drops by more than :data:`GROUNDED_DROP` on B itself). A grounded pair that misses it is one the mask's own
  deletion cannot find the evidence of: B itself still gives the word (a blur keeps a large object as a blob
  of its colour), or the word survives the object's pixels being replaced by B's (its outline stays). The
  share of baseline hits tells a miss of the optimisation from a miss of the deletion.

The instruments (questions use the demo's shapes, colours and templates, so the demo models can read them).
The first is the one settings are chosen on (:data:`TUNING`); the other three are never used for a choice
(:data:`UNTOUCHED`), and only their figures are quoted:

- ``tuning``: 144 x 144, soft light blotches on a flat light colour, 3-4 objects (one of 14-22 px, the
  others 24-60 px) that may touch or overlap by a few pixels, shapes and colours free to repeat.
- ``textured``: 160 x 160, a light, tinted multi-scale noise background, 2-3 objects of 28-48 px apart.
- ``small_large``: 128 x 128, soft light stripes over a gradient, one object of 68-96 px (over half the
  side) and one or two of 12-20 px.
- ``distractors``: 160 x 160, a light two-colour gradient, 4-5 objects of 26-40 px in a touching or
  overlapping cluster; two or three of them share the answer (the queried object's colour for a colour
  question, its shape for a shape question), and the queried object is drawn on top.

The demo's scenes are 128 x 128, 2-3 objects of 28-40 px apart, on a mid-grey grainy texture.
Every scene is a pure function of ``(instrument, index)``, on seeds of its own (:data:`SEEDS`).

``python -m lvlm_heat.demo.instruments --instrument textured --pairs 40 --method igos,superpixel`` prints
one line per instrument and explainer, and one JSON line last.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image, ImageDraw

from lvlm_heat.baseline import make_baseline
from lvlm_heat.config import ExplainConfig, ModelConfig, SelectionConfig
from lvlm_heat.demo.scoring import placement, word_probabilities
from lvlm_heat.demo.synthetic import COLOR_NAMES, COLORS, SHAPES, GroundedQuestion, Scene, SceneObject, ask
from lvlm_heat.metrics.functional import pointing_hit
from lvlm_heat.metrics.statistics import compare_methods, paired_difference
from lvlm_heat.sanity.randomisation import WeightSnapshot, randomise_

__all__ = ["INSTRUMENTS", "DrawnScene", "InstrumentPair", "evaluate_instrument", "evaluate_randomised",
           "baseline_drops", "make_instrument_pair", "object_drops", "run_instruments", "summarise"]

Instrument = Literal["tuning", "textured", "small_large", "distractors"]
TUNING = "tuning"
"""The one instrument settings may be chosen on; the others are never used for a choice."""
INSTRUMENTS: tuple[str, ...] = (TUNING, "textured", "small_large", "distractors")
UNTOUCHED: tuple[str, ...] = ("textured", "small_large", "distractors")
"""The instruments no setting was chosen on: the figures a reader may quote."""
SEEDS = {"tuning": 2204, "textured": 2201, "small_large": 2202, "distractors": 2203}
"""One stream per instrument, apart from the demo's streams (1, 2, 3)."""
SIZES = {"tuning": 144, "textured": 160, "small_large": 128, "distractors": 160}
GROUNDED_DROP = 1.0
"""Nats of ``log p(answer word)`` that painting out the queried object must remove for a causally grounded pair."""
PROBABILITY_FLOOR = 1e-30
"""Probabilities below this count as this (``log`` of an underflowed 0)."""
FIGURES = ("on_target", "on_other", "box_mass", "deletion_auc", "insertion_auc")
Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class DrawnScene:
    """A scene kept as its parts, so that it can be drawn again without any one object.

    Attributes:
        background: ``(H, W, 3)`` uint8.
        objects: Shapes, colour names and boxes ``(left, top, right, bottom)``, in drawing order.
        fills: The RGB colour each object is drawn in.
    """

    background: np.ndarray
    objects: tuple[SceneObject, ...]
    fills: tuple[tuple[int, int, int], ...]

    def render(self, without: int | None = None) -> Image.Image:
        """The scene as an RGB image, with object number ``without`` left out (painted out)."""
        canvas = Image.fromarray(self.background)
        draw = ImageDraw.Draw(canvas)
        for number, (item, fill) in enumerate(zip(self.objects, self.fills)):
            if number != without:
                _draw_shape(draw, item.shape, item.box, fill)
        return canvas


@dataclass(frozen=True)
class InstrumentPair:
    """A grounded pair of an instrument: what :class:`lvlm_heat.demo.evaluate.GroundedPair` holds, and the scene.

    Attributes:
        image: The scene.
        qa: Question, answer and queried object.
        target: Box of the queried object.
        others: Boxes of the other objects.
        scene: The scene's parts (to paint objects out).
        target_index: Position of the queried object in ``scene.objects``.
    """

    image: Image.Image
    qa: GroundedQuestion
    target: Box
    others: tuple[Box, ...]
    scene: DrawnScene
    target_index: int

    def _order(self) -> list[int]:
        """The objects' numbers in ``scene.objects``: the queried object, then the others (the order of ``others``)."""
        return [self.target_index, *(k for k in range(len(self.scene.objects)) if k != self.target_index)]

    def painted_out(self) -> list[Image.Image]:
        """The scene without the queried object, then without each other object (the order of ``others``)."""
        return [self.scene.render(without=k) for k in self._order()]

    def deleted(self, baseline: Image.Image) -> list[Image.Image]:
        """The scene with the queried object's pixels, then each other object's, replaced by ``baseline``'s: what
        the mask's deletion does to exactly that object. An object's pixels are where the scene differs from
        :meth:`painted_out`'s scene without it."""
        image, fill = np.asarray(self.image), np.asarray(baseline.convert("RGB"))
        out = []
        for without in self.painted_out():
            where, copy = (image != np.asarray(without)).any(-1), image.copy()
            copy[where] = fill[where]
            out.append(Image.fromarray(copy))
        return out


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: Box, fill: tuple[int, int, int]) -> None:
    """Draw ``shape`` filling ``box`` (the square fills its whole box, unlike the demo's inset square)."""
    left, top, right, bottom = box
    if shape == "circle":
        draw.ellipse((left, top, right - 1, bottom - 1), fill=fill)
    elif shape == "square":
        draw.rectangle((left, top, right - 1, bottom - 1), fill=fill)
    else:
        draw.polygon([((left + right - 1) / 2, top), (left, bottom - 1), (right - 1, bottom - 1)], fill=fill)


def _fill(rng: np.random.Generator, color: str) -> tuple[int, int, int]:
    """``color``'s RGB, jittered by up to 15 per channel as the demo models were trained."""
    return tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(COLORS[color], rng.integers(-15, 16, size=3)))


def _smooth_noise(rng: np.random.Generator, size: int, cells: int, channels: int) -> np.ndarray:
    """Gaussian noise on a ``cells x cells`` grid, upsampled bicubically: ``(size, size, channels)`` float32."""
    grid = rng.normal(0, 1, size=(cells, cells, channels)).astype(np.float32)
    planes = [np.asarray(Image.fromarray(grid[..., c]).resize((size, size), Image.BICUBIC)) for c in range(channels)]
    return np.stack(planes, axis=-1)


def _light(rng: np.random.Generator, low: float = 180, high: float = 228) -> np.ndarray:
    """A light, slightly tinted RGB colour, ``(3,)`` float."""
    return rng.uniform(low, high) + rng.normal(0, 8, size=3)


def textured_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Light multi-scale noise: four octaves (3 to 24 cells) of brightness, one of tint, no grain."""
    brightness = sum(0.5**k * _smooth_noise(rng, size, 3 * 2**k, 1) for k in range(4))
    tint = _smooth_noise(rng, size, 3, 3)
    return np.clip(_light(rng) + 14 * brightness + 6 * tint, 0, 255).astype(np.uint8)


def striped_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Soft stripes (period 10-22 px, any angle) of two light tones over a linear gradient."""
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32)
    angle, period = rng.uniform(0, np.pi), rng.uniform(10, 22)
    stripes = np.clip(2.5 * np.sin(2 * np.pi * (cols * np.cos(angle) + rows * np.sin(angle)) / period), -1, 1)
    gradient = (cols * np.cos(angle + 1.3) + rows * np.sin(angle + 1.3)) / size
    light, contrast = _light(rng, 185, 225), rng.uniform(8, 14)
    pixels = light + (contrast * stripes + 20 * gradient)[..., None]
    return np.clip(pixels, 0, 255).astype(np.uint8)


def gradient_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A linear gradient between two light colours along any direction, with faint fine noise."""
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (cols * np.cos(angle) + rows * np.sin(angle)) / size
    ramp = ((ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6))[..., None]
    pixels = (1 - ramp) * _light(rng, 170, 235) + ramp * _light(rng, 170, 235)
    return np.clip(pixels + 4 * _smooth_noise(rng, size, 20, 1), 0, 255).astype(np.uint8)


def blotched_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A flat light colour under 6-10 soft-edged blotches of other light tones, with faint grain."""
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32)
    pixels = np.broadcast_to(_light(rng, 175, 230), (size, size, 3)).astype(np.float32)
    for _ in range(int(rng.integers(6, 11))):
        centre, radius = rng.uniform(0, size, size=2), rng.uniform(size / 10, size / 3)
        distance = np.hypot(cols - centre[0], rows - centre[1])
        weight = np.clip((radius - distance) / (radius / 3), 0, 1)[..., None]
        pixels = (1 - weight) * pixels + weight * _light(rng, 175, 230)
    return np.clip(pixels + rng.normal(0, 2, size=pixels.shape), 0, 255).astype(np.uint8)


def _free(box: Box, taken: list[Box], margin: int) -> bool:
    """``box`` keeps ``margin`` px from every box of ``taken``."""
    return all(box[2] + margin <= o[0] or o[2] + margin <= box[0] or box[3] + margin <= o[1] or o[3] + margin <= box[1]
               for o in taken)


def _place_apart(rng: np.random.Generator, size: int, extent: int, taken: list[Box], margin: int) -> Box | None:
    for _ in range(200):
        left, top = (int(v) for v in rng.integers(1, size - extent, size=2))
        box = (left, top, left + extent, top + extent)
        if _free(box, taken, margin):
            return box
    return None


def _place_all(rng: np.random.Generator, size: int, extents: list[int], margin: int) -> list[Box] | None:
    """Boxes of ``extents`` in order, each ``margin`` px from those placed before it; ``None`` when one finds no
    room (every extent is still tried, so the draws that follow do not depend on which one failed)."""
    boxes: list[Box] = []
    for extent in extents:
        box = _place_apart(rng, size, extent, boxes, margin)
        if box is not None:
            boxes.append(box)
    return boxes if len(boxes) == len(extents) else None


def _nameable(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Shapes and colours of ``count`` objects, some of which has a unique shape or a unique colour."""
    while True:
        shapes, colors = rng.integers(len(SHAPES), size=count), rng.integers(len(COLOR_NAMES), size=count)
        if (np.bincount(shapes)[shapes] == 1).any() or (np.bincount(colors)[colors] == 1).any():
            return shapes, colors


def _scene(rng: np.random.Generator, background: np.ndarray, kinds: list[tuple[int, int]], boxes: list[Box]) -> DrawnScene:
    objects = tuple(SceneObject(SHAPES[s], COLOR_NAMES[c], box) for (s, c), box in zip(kinds, boxes))
    return DrawnScene(background, objects, tuple(_fill(rng, o.color) for o in objects))


def tuning_scene(rng: np.random.Generator) -> DrawnScene:
    """The tuning instrument (144 x 144, :func:`blotched_background`): 3-4 objects, one of 14-22 px and the others
    of 24-60 px, which may touch or overlap by a few pixels; shapes and colours may repeat (distractors)."""
    size = SIZES["tuning"]
    background = blotched_background(rng, size)
    while True:
        shapes, colors = _nameable(rng, int(rng.integers(3, 5)))
        extents = [int(rng.integers(14, 23))] + [int(rng.integers(24, 61)) for _ in shapes[1:]]
        if (boxes := _place_all(rng, size, extents, -3)) is not None:
            order = rng.permutation(len(boxes))  # the small object is not always drawn first
            return _scene(rng, background, [(shapes[k], colors[k]) for k in order], [boxes[k] for k in order])


def textured_scene(rng: np.random.Generator) -> DrawnScene:
    """2-3 objects of 28-48 px, at least 4 px apart, on :func:`textured_background` (160 x 160)."""
    size = SIZES["textured"]
    background = textured_background(rng, size)
    while True:
        shapes, colors = _nameable(rng, int(rng.integers(2, 4)))
        boxes: list[Box] = []
        for _ in shapes:
            box = _place_apart(rng, size, int(rng.integers(28, 49)), boxes, 4)
            if box is not None:
                boxes.append(box)
        if len(boxes) == len(shapes):
            return _scene(rng, background, list(zip(shapes, colors)), boxes)


def small_large_scene(rng: np.random.Generator) -> DrawnScene:
    """One object of 68-96 px and one or two of 12-20 px, 3 px apart, on :func:`striped_background` (128 x 128)."""
    size = SIZES["small_large"]
    background = striped_background(rng, size)
    while True:
        shapes, colors = _nameable(rng, int(rng.integers(2, 4)))
        extents = [int(rng.integers(68, 97))] + [int(rng.integers(12, 21)) for _ in shapes[1:]]
        if (boxes := _place_all(rng, size, extents, 3)) is not None:
            return _scene(rng, background, list(zip(shapes, colors)), boxes)


def _repeats_only(rng: np.random.Generator, count: int, choices: list[int]) -> list[int]:
    """``count`` values from ``choices`` in which no value occurs exactly once (none is nameable by it)."""
    while True:
        values = [int(v) for v in rng.choice(choices, size=count)]
        if all(values.count(v) != 1 for v in values):
            return values


def _cluster(rng: np.random.Generator, size: int, extents: list[int]) -> list[Box] | None:
    """Boxes of ``extents`` in one cluster: each touches or overlaps (by up to 20%) one placed before it."""
    first = extents[0]
    left, top = (int(v) for v in rng.integers(size // 4, size - size // 4 - first, size=2))
    boxes = [(left, top, left + first, top + first)]
    for extent in extents[1:]:
        for _ in range(200):
            anchor = boxes[int(rng.integers(len(boxes)))]
            angle, reach = rng.uniform(0, 2 * np.pi), (anchor[2] - anchor[0] + extent) / 2 * rng.uniform(0.8, 1.0)
            centre = ((anchor[0] + anchor[2]) / 2 + reach * np.cos(angle), (anchor[1] + anchor[3]) / 2 + reach * np.sin(angle))
            box = tuple(round(v) for v in (centre[0] - extent / 2, centre[1] - extent / 2,
                                                centre[0] + extent / 2, centre[1] + extent / 2))
            inside = box[0] >= 1 and box[1] >= 1 and box[2] <= size - 1 and box[3] <= size - 1
            if inside and all(_overlap(box, other) <= 0.25 for other in boxes):
                boxes.append(box)
                break
        else:
            return None
    return boxes


def _overlap(box: Box, other: Box) -> float:
    """Area shared by two boxes, as a share of the smaller one."""
    width = min(box[2], other[2]) - max(box[0], other[0])
    height = min(box[3], other[3]) - max(box[1], other[1])
    smaller = min((box[2] - box[0]) * (box[3] - box[1]), (other[2] - other[0]) * (other[3] - other[1]))
    return max(width, 0) * max(height, 0) / smaller


def distractor_scene(rng: np.random.Generator, kind: str) -> DrawnScene:
    """4-5 objects of 26-40 px in one cluster on :func:`gradient_background` (160 x 160); the last one drawn (on top)
    is the only object a ``kind`` question can name, and two or three others share its answer."""
    size = SIZES["distractors"]
    background = gradient_background(rng, size)
    count = int(rng.integers(4, 6))
    shape, color = int(rng.integers(len(SHAPES))), int(rng.integers(len(COLOR_NAMES)))
    sharing = int(rng.integers(2, 4))  # distractors sharing the answer
    if kind == "color":  # the target's shape is unique; the answer (its colour) repeats
        shapes = _repeats_only(rng, count - 1, [s for s in range(len(SHAPES)) if s != shape])
        colors = [color] * sharing + [int(c) for c in rng.integers(len(COLOR_NAMES), size=count - 1 - sharing)]
    else:  # the target's colour is unique; the answer (its shape) repeats
        colors = _repeats_only(rng, count - 1, [c for c in range(len(COLOR_NAMES)) if c != color])
        shapes = [shape] * sharing + [int(s) for s in rng.integers(len(SHAPES), size=count - 1 - sharing)]
    kinds = list(zip(shapes, colors)) + [(shape, color)]
    while (boxes := _cluster(rng, size, [int(rng.integers(26, 41)) for _ in kinds])) is None:
        pass
    return _scene(rng, background, kinds, boxes[1:] + boxes[:1])  # the first placed (the cluster's core) is the target


def make_instrument_pair(name: Instrument, index: int) -> InstrumentPair:
    """Pair ``index`` of instrument ``name``: a pure function of both. Even indices ask for a colour, odd for a shape.

    Args:
        name: One of :data:`INSTRUMENTS`.
        index: Position in the instrument's stream.

    Returns:
        The scene, its question (the demo's templates) and the boxes.
    """
    seed, kind = SEEDS[name], "color" if index % 2 == 0 else "shape"
    rng = np.random.default_rng([seed, index])
    if name == "tuning":
        drawn = tuning_scene(rng)
    elif name == "textured":
        drawn = textured_scene(rng)
    elif name == "small_large":
        drawn = small_large_scene(rng)
    elif name == "distractors":
        drawn = distractor_scene(rng, kind)
    else:
        raise ValueError(f"instrument is one of {', '.join(INSTRUMENTS)}, got {name!r}")
    image = drawn.render()
    qa = ask(Scene(image, drawn.objects), seed, index, kind)
    target_index = next(k for k, item in enumerate(drawn.objects) if item is qa.target)
    others = tuple(item.box for item in drawn.objects if item is not qa.target)
    return InstrumentPair(image, qa, qa.target.box, others, drawn, target_index)


def object_drops(adapter, pair: InstrumentPair) -> list[float]:
    """``log p(word | image) - log p(word | image without object k)`` for the answer word (its last token).

    Returns:
        One drop per object: the queried object first, then the others in the order of ``pair.others``.
    """
    probabilities = word_probabilities(adapter, pair, [pair.image, *pair.painted_out()])
    on_image, *without = (math.log(max(p, PROBABILITY_FLOOR)) for p in probabilities)
    return [on_image - value for value in without]


def baseline_drops(adapter, pair: InstrumentPair, baseline: Image.Image) -> tuple[float, list[float]]:
    """What the mask's own deletion can see of the answer word (its last token).

    Returns:
        ``log p(word | image) - log p(word | baseline)``: how much the word depends on the image against the
        baseline B the mask deletes to; and one drop of ``log p(word)`` per object when only that object's pixels
        are replaced by B's, the queried object first, then the others in the order of ``pair.others``.
    """
    probabilities = word_probabilities(adapter, pair, [pair.image, baseline, *pair.deleted(baseline)])
    on_image, on_baseline, *without = (math.log(max(p, PROBABILITY_FLOOR)) for p in probabilities)
    return on_image - on_baseline, [on_image - value for value in without]


def _explain(explainer, pair: InstrumentPair) -> dict[str, dict[str, Any]]:
    """Each explainer's figures on ``pair`` (only those that made a map); ``unstable``: ``p(I) - p(B)`` of the
    explained tokens is below ``min_gap``, so the normalised AUCs are not to be averaged."""
    record = explainer.explain(pair.image, pair.qa.question, pair.qa.answer)
    return {m.method: {**placement(m.saliency, pair.target, pair.others), "deletion_auc": m.deletion.auc, "insertion_auc": m.insertion.auc,
                       "unstable": record.unstable, "passes": m.passes, "seconds": m.seconds}
            for m in record.methods if m.saliency is not None}


def evaluate_instrument(explainer, name: Instrument, pairs: int, first_index: int = 0) -> dict[str, Any]:
    """Explain the causally grounded pairs among ``pairs`` of instrument ``name`` and score every explainer.

    Args:
        explainer: A :class:`lvlm_heat.api.Explainer` (its ``config.method`` names the explainers).
        name: One of :data:`INSTRUMENTS`.
        pairs: Pairs drawn (only the causally grounded ones are explained).
        first_index: Index of the first pair in the instrument's stream.

    Returns:
        What :func:`summarise` gives for the pairs' ``details`` (one row per pair).
    """
    details, config = [], explainer.config
    for index in range(first_index, first_index + pairs):
        pair = make_instrument_pair(name, index)
        drops = object_drops(explainer.adapter, pair)
        grounded = drops[0] > GROUNDED_DROP
        baseline = make_baseline(pair.image, config.baseline, seed=config.optim.seed)
        word_llr, deleted = baseline_drops(explainer.adapter, pair, baseline)
        details.append({"index": index, "question": pair.qa.question, "answer": pair.qa.answer,
                        "drops": [round(d, 3) for d in drops], "grounded": grounded,
                        "ceiling_hit": grounded and int(np.argmax(drops)) == 0,
                        "word_llr": round(word_llr, 3), "baseline_drops": [round(d, 3) for d in deleted],
                        "baseline_hit": grounded and word_llr > GROUNDED_DROP and deleted[0] > GROUNDED_DROP
                        and int(np.argmax(deleted)) == 0,
                        "maps": _explain(explainer, pair) if grounded else {}})
    return summarise(name, details, explainer.config.methods)


RANDOMISATION_SEED = 2299
"""Seed of the randomised weights (:func:`evaluate_randomised`)."""


def evaluate_randomised(explainer, name: Instrument, pairs: int, first_index: int = 0,
                        seed: int = RANDOMISATION_SEED) -> dict[str, Any]:
    """The first explainer's maps on a model whose every parameter is randomised: are they at chance?

    A map that explains the model must lose the object when what the model learnt is gone (the last step of
    cascading parameter randomisation, :mod:`lvlm_heat.sanity.randomisation`). Every drawn pair is explained
    (a randomised model grounds nothing), always the answer word: the model-dependent selection rules would
    select nothing. Chance is a peak on an object drawn at random from the scene's objects: per pair, the
    share of its objects whose box holds the peak. The weights are put back exactly afterwards.

    Returns:
        ``pairs``, ``maps``, ``on_target`` (peaks on the queried object, over the maps), ``on_random_object``
        (chance, over the same maps), ``difference`` (their paired difference with its bootstrap interval) and
        per-pair ``details``.
    """
    model, base = explainer.adapter.model, explainer.config
    method = base.methods[0]
    details = []
    with WeightSnapshot(model).kept():
        randomise_(list(model.parameters()), torch.Generator().manual_seed(seed))
        for index in range(first_index, first_index + pairs):
            pair = make_instrument_pair(name, index)
            word = pair.qa.answer.split()[-1]
            explainer.config = replace(base, method=method, select=SelectionConfig(rule="words", words=[word]))
            try:
                record = explainer.explain(pair.image, pair.qa.question, pair.qa.answer)
            finally:
                explainer.config = base
            found = next((m for m in record.methods if m.saliency is not None), None)
            row: dict[str, Any] = {"index": index, "answer": pair.qa.answer, "mapped": found is not None}
            if found is not None:
                saliency = torch.from_numpy(found.saliency)
                boxes = (pair.target, *pair.others)
                row |= {"on_target": pointing_hit(saliency, pair.target),
                        "on_random_object": sum(pointing_hit(saliency, box) for box in boxes) / len(boxes)}
            details.append(row)
    mapped = [row for row in details if row["mapped"]]
    difference = paired_difference([r["on_target"] for r in mapped], [r["on_random_object"] for r in mapped])
    return {"instrument": name, "randomised": method, "pairs": pairs, "maps": len(mapped),
            "on_target": sum(r["on_target"] for r in mapped) / len(mapped) if mapped else None,
            "on_random_object": sum(r["on_random_object"] for r in mapped) / len(mapped) if mapped else None,
            "difference": difference.to_dict(), "details": details}


def describe_randomised(row: dict[str, Any]) -> str:
    """One line for :func:`evaluate_randomised`'s result."""
    d = row["difference"]
    return (f"{row['instrument']} {row['randomised']} on a randomised model: maps {row['maps']}/{row['pairs']}; "
            f"peak on the queried object {_fmt(row['on_target'])}, on a random object (chance) "
            f"{_fmt(row['on_random_object'])}; "
            f"difference {_fmt(d['mean'])} [{_fmt(d['low'])}, {_fmt(d['high'])}]")


def _averageable(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with its AUCs left out (``None``) when their normalisation is unstable."""
    return {**row, "deletion_auc": None, "insertion_auc": None} if row.get("unstable") else row


def summarise(name: str, details: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """The figures of :func:`evaluate_instrument` from its per-pair ``details``.

    Returns:
        ``pairs``, ``grounded`` (causally), ``ceiling_hits`` and ``object_ceiling`` (their share of the grounded
        pairs), ``baseline_hits`` and ``baseline_ceiling`` (the same as the mask deletes), ``details``; under
        ``methods``, per explainer: ``maps``, ``on_target`` and ``on_other`` (counts),
        ``pointing_game`` (over grounded pairs, a missing map a miss), ``peak_on_other`` (over maps), ``unstable``
        (maps whose AUCs are left out of the means), the means of box mass (every map) and of the AUCs (stable
        maps) with bootstrap intervals and paired differences to the first explainer (``intervals``), and the
        medians over every map.
    """
    grounded = [row for row in details if row["grounded"]]
    hits = sum(row["ceiling_hit"] for row in grounded)
    baseline_hits = sum(row["baseline_hit"] for row in grounded)
    per_method = {m: [row["maps"].get(m, {}) for row in grounded] for m in names}
    stable = {m: [_averageable(r) for r in rows] for m, rows in per_method.items()}
    intervals = compare_methods(stable, FIGURES, names[0]) if grounded else {}
    methods = {}
    for method, rows in per_method.items():
        mapped = [r for r in rows if r]
        on_target, on_other = sum(r["on_target"] for r in mapped), sum(r["on_other"] for r in mapped)
        methods[method] = {
            "maps": len(mapped), "on_target": on_target, "on_other": on_other,
            "pointing_game": on_target / len(grounded) if grounded else None,
            "peak_on_other": on_other / len(mapped) if mapped else None,
            "unstable": sum(r["unstable"] for r in mapped),
            **{f"mean_{key}": intervals[method][key]["mean"] if grounded else None for key in FIGURES[2:]},
            **{f"median_{key}": statistics.median(r[key] for r in mapped) if mapped else None for key in FIGURES[2:]},
            "intervals": intervals.get(method, {})}
    return {"instrument": name, "pairs": len(details), "grounded": len(grounded), "ceiling_hits": hits,
            "object_ceiling": hits / len(grounded) if grounded else None, "baseline_hits": baseline_hits,
            "baseline_ceiling": baseline_hits / len(grounded) if grounded else None, "methods": methods,
            "details": details}


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def describe(row: dict[str, Any]) -> list[str]:
    """Lines for one instrument: its ceiling, then one per explainer."""
    head = (f"{row['instrument']}: {row['pairs']} pairs, {row['grounded']} causally grounded, object ceiling "
            f"{row['ceiling_hits']}/{row['grounded']} ({_fmt(row['object_ceiling'])}); as the mask deletes (to the "
            f"baseline) {row['baseline_hits']}/{row['grounded']} ({_fmt(row['baseline_ceiling'])})")
    lines = [head]
    for method, f in row["methods"].items():
        lines.append(f"  {row['instrument']} {method:<11} maps {f['maps']}/{row['grounded']}; peak on the object "
                     f"{f['on_target']}/{row['grounded']} ({_fmt(f['pointing_game'])}), on another object "
                     f"{f['on_other']}/{f['maps']} maps ({_fmt(f['peak_on_other'])}); box mass mean "
                     f"{_fmt(f['mean_box_mass'])} (median {_fmt(f['median_box_mass'])}); over the "
                     f"{f['maps'] - f['unstable']} stable maps, deletion AUC mean {_fmt(f['mean_deletion_auc'])}, "
                     f"insertion AUC mean {_fmt(f['mean_insertion_auc'])} (medians over all maps "
                     f"{_fmt(f['median_deletion_auc'])}, {_fmt(f['median_insertion_auc'])})")
        if "difference" in f["intervals"].get("box_mass", {}):
            lines.append(f"    {method} - {next(iter(row['methods']))}, paired means [95% interval]: " + "; ".join(
                f"{key} {_fmt(d['mean'])} [{_fmt(d['low'])}, {_fmt(d['high'])}] (n {d['n']})"
                for key, d in ((key, f["intervals"][key]["difference"]) for key in FIGURES)))
    return lines


def run_instruments(
    model: ModelConfig = ModelConfig(device="cpu"),
    instrument: Literal["tuning", "textured", "small_large", "distractors", "untouched", "all"] = "untouched",
    pairs: int = 40,
    first_index: int = 0,
    explain: ExplainConfig | None = None,
    threads: int | None = None,
    randomised: bool = False,
) -> list[dict[str, Any]]:
    """Localisation against the object-level ceiling on instruments never used to choose a setting.

    Args:
        model: A demo model (``--model demo``, ``demo-qwen2-vl``, ``demo-llava-l2``) or a checkpoint trained on the
            demo task (the CPU by default).
        instrument: One instrument; ``untouched``, the three no setting was chosen on; or ``all``, those and
            the tuning instrument.
        pairs: Pairs drawn per instrument (only the causally grounded ones are explained).
        first_index: Index of the first pair in each instrument's stream.
        explain: The explanation settings (the flags of ``lvlm-heat explain``: ``--method igos,superpixel``, ...).
        threads: CPU threads of torch (default: torch's own; on a busy machine 1 is often several times faster).
        randomised: Also explain every drawn pair with the first explainer on the model with every parameter
            randomised, and compare its peaks with chance (:func:`evaluate_randomised`); the row gets it under
            ``randomised``.

    Returns:
        One row per instrument, as :func:`evaluate_instrument` gives it (also printed as the last line, in JSON).
    """
    from lvlm_heat.api import Explainer

    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)
    explainer = Explainer(model, config=explain or ExplainConfig())
    results = []
    names = {"all": INSTRUMENTS, "untouched": UNTOUCHED}.get(instrument, (instrument,))
    for name in names:
        row = evaluate_instrument(explainer, name, pairs, first_index)
        print("\n".join(describe(row)), flush=True)
        if randomised:
            row["randomised"] = evaluate_randomised(explainer, name, pairs, first_index)
            print(describe_randomised(row["randomised"]), flush=True)
        results.append(row)
    print(json.dumps(results))
    return results


if __name__ == "__main__":
    from lvlm_heat.cli import main

    main(sys.argv[1:], run_instruments, "python -m lvlm_heat.demo.instruments")
