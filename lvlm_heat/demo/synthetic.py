"""Synthetic grounded VQA: a few coloured shapes on a textured background.

Every scene holds two or three objects whose shapes and colours are drawn
independently, repeats allowed. A question names its object by an attribute no other
object shares ("the circle" when there is one circle, "the red object" when there is
one red object) and asks for the other attribute; the answer is a short sentence
("the circle is red") in which only one word depends on the image. Because repeats are
allowed, the other objects say nothing about the answer (no answering by elimination),
so the evidence sits in the queried object alone, whose box is recorded.

Scenes are a pure function of ``(seed, index)``: the demo model's training set, its
held-out set and the shipped demo pairs are reproducible bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle")
COLORS = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (40, 80, 230),
    "yellow": (235, 215, 40),
}
COLOR_NAMES = tuple(COLORS)
SCENE_SIZE = 128  # side of every demo scene, in pixels
TRAIN_SEED, HELDOUT_SEED, PAIRS_SEED = 1, 2, 3  # streams: demo model training set, held-out set, demo pairs


@dataclass(frozen=True)
class SceneObject:
    """One object: its shape, colour and box ``(left, top, right, bottom)`` in pixels."""

    shape: str
    color: str
    box: tuple[int, int, int, int]


@dataclass(frozen=True)
class Scene:
    """A rendered scene: the RGB image and its objects, in drawing order."""

    image: Image.Image
    objects: tuple[SceneObject, ...]


@dataclass(frozen=True)
class GroundedQuestion:
    """A question about one object of a scene, with its answer and evidence box."""

    question: str
    answer: str
    target: SceneObject
    kind: str  # "color" or "shape"


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A grey, low-frequency texture with fine grain, ``(size, size, 3)`` uint8."""
    base = rng.uniform(90, 160)
    coarse = rng.normal(0, 18, size=(5, 5, 1)).astype(np.float32)
    coarse = np.asarray(
        Image.fromarray(coarse[..., 0]).resize((size, size), Image.BICUBIC), dtype=np.float32
    )[..., None]
    tint = rng.normal(0, 6, size=(1, 1, 3))
    grain = rng.normal(0, 6, size=(size, size, 3))
    return np.clip(base + coarse + tint + grain, 0, 255).astype(np.uint8)


def _place(rng: np.random.Generator, size: int, extent: int, taken: list) -> tuple[int, int, int, int] | None:
    for _ in range(100):
        left, top = (int(v) for v in rng.integers(1, size - extent - 1, size=2))
        box = (left, top, left + extent, top + extent)
        margin = max(1, size // 32)
        if all(
            box[2] + margin <= o[0] or o[2] + margin <= box[0] or box[3] + margin <= o[1] or o[3] + margin <= box[1]
            for o in taken
        ):
            return box
    return None


def make_scene(seed: int, index: int, size: int = SCENE_SIZE, max_objects: int = 3, min_objects: int = 2) -> Scene:
    """Render scene ``index`` of the stream ``seed``.

    Args:
        seed: Selects the stream (``TRAIN_SEED``, ``HELDOUT_SEED``, ``PAIRS_SEED``).
        index: Position in the stream.
        size: Side of the square image in pixels.
        max_objects: At most this many objects are drawn.
        min_objects: At least this many are drawn (fewer only where they do not fit without overlap).

    Returns:
        The RGB image and its objects, in drawing order.
    """
    rng = np.random.default_rng([seed, index])
    canvas = Image.fromarray(_background(rng, size))
    if max_objects == 0:
        return Scene(canvas, ())
    draw = ImageDraw.Draw(canvas)
    count = int(rng.integers(min(min_objects, max_objects), max_objects + 1))
    while True:  # some object must be nameable by a unique shape or a unique colour
        shapes = rng.integers(len(SHAPES), size=count)
        colors = rng.integers(len(COLOR_NAMES), size=count)
        if (np.bincount(shapes)[shapes] == 1).any() or (np.bincount(colors)[colors] == 1).any():
            break
    taken: list[tuple[int, int, int, int]] = []
    objects = []
    for shape_index, color_index in zip(shapes, colors):
        extent = int(rng.integers(size * 7 // 32, size * 10 // 32 + 1))
        box = _place(rng, size, extent, taken)
        if box is None:
            continue
        taken.append(box)
        shape, color = SHAPES[shape_index], COLOR_NAMES[color_index]
        jitter = rng.integers(-15, 16, size=3)
        fill = tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(COLORS[color], jitter))
        left, top, right, bottom = box
        if shape == "circle":
            draw.ellipse((left, top, right - 1, bottom - 1), fill=fill)
        elif shape == "square":
            inset = extent // 10
            draw.rectangle((left + inset, top + inset, right - 1 - inset, bottom - 1 - inset), fill=fill)
        else:
            draw.polygon([((left + right - 1) / 2, top), (left, bottom - 1), (right - 1, bottom - 1)], fill=fill)
        objects.append(SceneObject(shape, color, box))
    return Scene(canvas, tuple(objects))


def askable(scene: Scene, kind: str) -> list[SceneObject]:
    """Objects a ``kind`` question can name unambiguously: unique shape (colour questions)
    or unique colour (shape questions)."""
    key = (lambda o: o.shape) if kind == "color" else (lambda o: o.color)
    return [o for o in scene.objects if sum(key(p) == key(o) for p in scene.objects) == 1]


def ask(scene: Scene, seed: int, index: int, kind: str | None = None) -> GroundedQuestion:
    """Pick an object of ``scene`` and ask for its colour or its shape (``kind``, else random)."""
    rng = np.random.default_rng([seed, index, 1])
    kind = kind or ("color" if rng.random() < 0.5 else "shape")
    if not askable(scene, kind):  # a placement failure can drop the only unique object
        kind = "shape" if kind == "color" else "color"
    candidates = askable(scene, kind)
    target = candidates[int(rng.integers(len(candidates)))]
    if kind == "color":
        return GroundedQuestion(
            f"What color is the {target.shape}?", f"the {target.shape} is {target.color}", target, kind
        )
    return GroundedQuestion(
        f"What shape is the {target.color} object?", f"the {target.color} object is a {target.shape}", target, kind
    )


def paint_out(image: Image.Image, box: tuple[int, int, int, int], objects: list[tuple[int, int, int, int]]) -> Image.Image:
    """``image`` with ``box`` filled by the mean colour of the background (outside every box of ``objects``)."""
    pixels = np.asarray(image).copy()
    background = np.ones(pixels.shape[:2], dtype=bool)
    for left, top, right, bottom in objects:
        background[top:bottom, left:right] = False
    left, top, right, bottom = box
    pixels[top:bottom, left:right] = pixels[background].mean(0).astype(np.uint8)
    return Image.fromarray(pixels)
