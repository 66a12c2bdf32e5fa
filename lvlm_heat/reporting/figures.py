"""What a user looks at: the heatmap overlay and the curve plot.

The functions return data (an RGB array, a :class:`~matplotlib.figure.Figure`) and never show
anything. They read an :class:`~lvlm_heat.record.ExplanationRecord` (typed ``Any`` here: the record's
own display methods call this module, which therefore does not import it). Figures are made without ``pyplot``, so the user's matplotlib backend is never
touched and nothing stays registered in pyplot's figure manager.
"""

from __future__ import annotations

import math
import textwrap
from typing import Any

import matplotlib
import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image

from lvlm_heat.config import TITLES
from lvlm_heat.metrics.curves import Curve
from lvlm_heat.metrics.functional import peak
from lvlm_heat.reporting.strip import displayable

DISPLAY_SIDE = 1024
"""Pixels on the long side of a drawn image or map: a photo of any size is drawn at most this large (the axes
keep the original image's pixel coordinates, so boxes and peaks land where they are)."""
COLORMAP = "jet"
SCALE_LABEL = "saliency, scaled to [0, 1]\n(1 = removing it costs the answer most)"
UNSTABLE = "unstable: p(I) ~ p(B)"
"""The mark of a map whose curves' normalisation is unstable, wherever its AUCs are shown."""


def display_size(height: int, width: int, side: int = DISPLAY_SIDE) -> tuple[int, int]:
    """``(h, w)``: ``(height, width)`` scaled down to at most ``side`` on the long side (never up).

    >>> display_size(4000, 6000), display_size(64, 48)
    ((683, 1024), (64, 48))
    """
    scale = min(1.0, side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def heatmap_overlay(image: Image.Image, saliency: np.ndarray, alpha: float = 0.5, colormap: str = COLORMAP,
                    side: int = DISPLAY_SIDE, span: tuple[float, float] | None = None) -> np.ndarray:
    """``(h, w, 3)`` uint8: ``saliency`` (``(H, W)``, any range, min-max scaled, or scaled from ``span``'s low to
    its high: the range several images share) in colour over ``image``, at :func:`display_size` of the map (the
    image is resized to it)."""
    height, width = display_size(*saliency.shape, side)
    if (height, width) != saliency.shape:
        saliency = np.asarray(Image.fromarray(saliency.astype(np.float32), "F").resize((width, height), Image.BILINEAR))
    low, high = span if span is not None else (float(saliency.min()), float(saliency.max()))
    scaled = np.clip((saliency - low) / (high - low), 0, 1) if high > low else np.zeros_like(saliency)
    colours = matplotlib.colormaps[colormap](scaled)[..., :3]
    picture = image.convert("RGB")
    if picture.size != (width, height):
        picture = picture.resize((width, height), Image.BILINEAR)
    base = np.asarray(picture, dtype=np.float32) / 255
    return ((1 - alpha) * base + alpha * colours).clip(0, 1).__mul__(255).round().astype(np.uint8)


def show(axis, picture: np.ndarray | Image.Image, height: int, width: int) -> None:
    """Draw ``picture`` (any resolution) over the original image's ``height x width`` pixel coordinates."""
    axis.imshow(picture, extent=(0, width, height, 0), interpolation="antialiased")


def scores(deletion: Curve, insertion: Curve, unstable: bool = False, digits: int = 2) -> str:
    """``deletion 0.12, insertion 0.93``, marked when the normalisation is unstable."""
    text = f"deletion {deletion.auc:.{digits}f}, insertion {insertion.auc:.{digits}f}"
    return f"{text} ({UNSTABLE})" if unstable else text


def _title(explanation: Any, width: int = 70) -> str:
    selected = ", ".join(explanation.selected_tokens) or "none"
    lines = [f"Q: {explanation.question}", f"A: {explanation.answer}", f"explained tokens: {selected}"]
    return displayable("\n".join(textwrap.shorten(line, width) for line in lines))


def overlay_figure(image: Image.Image, explanation: Any, curves: bool = False, words: bool = False) -> Figure:
    """The image and its heatmap side by side, titled with question, answer and tokens, the answer strip
    (:mod:`~lvlm_heat.reporting.strip`) below; with a box, the box on every map and the saliency peak marked.

    Args:
        image: The explained image.
        explanation: Its explanation (with a saliency map).
        curves: Add the deletion and insertion curves as a third panel (when the explanation has them).
        words: Add a row of per-word maps (when the explanation has them), up to five a row.
    """
    from lvlm_heat.reporting.strip import draw_strip, line_height_in, strip_lines

    curves = curves and explanation.deletion is not None and explanation.insertion is not None
    word_maps = list(explanation.words or []) if words else []
    columns, width, strip_fontsize = (3, 12.0, 9) if curves else (2, 8.0, 9)
    word_rows = math.ceil(len(word_maps) / WORDS_PER_ROW)
    word_height = 2.3 * word_rows * (5 if curves else 4) / min(max(len(word_maps), 1), WORDS_PER_ROW) * (width / 12)
    strip_height = 0.35 + strip_lines(explanation.tokens, 0.9 * width, strip_fontsize) * line_height_in(strip_fontsize)
    heights = [3.6] + ([word_height] if word_maps else []) + [strip_height]
    figure = Figure(figsize=(width, 0.7 + sum(heights)))
    outer = figure.add_gridspec(len(heights), 1, height_ratios=heights)
    top = outer[0].subgridspec(1, columns)
    axes = [figure.add_subplot(top[0, 0]), figure.add_subplot(top[0, 1])]
    size = (image.height, image.width)
    show(axes[0], image.convert("RGB").resize(display_size(*size)[::-1], Image.BILINEAR), *size)
    axes[0].set_title("image")
    show(axes[1], heatmap_overlay(image, explanation.saliency), *size)
    methods = getattr(explanation, "methods", None) or []
    name = "saliency" if not methods or methods[0].method == "igos" else TITLES[methods[0].method]
    title = f"{name} (red = important)"
    if explanation.bbox is not None:
        _mark_box(axes, explanation.saliency, explanation.bbox)
        title = f"{name} (peak {'in' if explanation.pointing_hit else 'outside'} the box)"
    axes[1].set_title(title + (f"\n{UNSTABLE}" if explanation.unstable else ""))
    _colour_bar(figure, axes[1])
    for axis in axes:
        axis.axis("off")
    if curves:
        draw_curves(figure.add_subplot(top[0, 2]), explanation.deletion, explanation.insertion, explanation.unstable)
    if word_maps:
        grid = outer[1].subgridspec(word_rows, min(len(word_maps), WORDS_PER_ROW))
        for k, word in enumerate(word_maps):
            axis = figure.add_subplot(grid[k // WORDS_PER_ROW, k % WORDS_PER_ROW])
            show(axis, heatmap_overlay(image, word.saliency), *size)
            if explanation.bbox is not None:
                _mark_box([axis], word.saliency, explanation.bbox)
            title = f"{word.word!r}: {scores(word.deletion, word.insertion, word.unstable)}"
            axis.set_title(displayable(textwrap.fill(title, 34)), fontsize=8)
            axis.axis("off")
    draw_strip(figure.add_subplot(outer[-1]), explanation.tokens, fontsize=strip_fontsize)
    figure.suptitle(_title(explanation, 70 + 40 * curves), fontsize=9)
    figure.tight_layout()
    return figure


WORDS_PER_ROW = 5


def word_figure(image: Image.Image, explanation: Any, word: Any) -> Figure:
    """One word's map: the image and the word's heatmap, the strip with only the word's tokens marked."""
    from dataclasses import replace

    tokens = [replace(t, selected=t.index in word.tokens) for t in explanation.tokens]
    alone = replace(explanation, saliency=word.saliency, tokens=tokens, words=None, deletion=word.deletion,
                    insertion=word.insertion, unstable=word.unstable, pointing_hit=word.pointing_hit)
    figure = overlay_figure(image, alone)
    title = f"map of {word.word!r}: {scores(word.deletion, word.insertion, word.unstable, digits=3)}"
    figure.axes[1].set_title(displayable(textwrap.fill(title, 48)), fontsize=9)
    figure.tight_layout()
    return figure


def words_figure(image: Image.Image, explanation: Any) -> Figure:
    """Every per-word map side by side after the joint map (up to five a row), the answer strip below."""
    from lvlm_heat.reporting.strip import draw_strip, line_height_in, strip_lines

    maps = [("joint map", explanation.saliency, explanation.deletion, explanation.insertion, explanation.unstable)]
    maps += [(repr(w.word), w.saliency, w.deletion, w.insertion, w.unstable) for w in explanation.words or []]
    rows, columns = math.ceil(len(maps) / WORDS_PER_ROW), min(len(maps), WORDS_PER_ROW)
    width = 2.6 * columns
    panel = width / columns * image.height / image.width + 0.4
    strip_height = 0.35 + strip_lines(explanation.tokens, 0.9 * width) * line_height_in()
    figure = Figure(figsize=(width, 0.5 + rows * panel + strip_height))
    grid = figure.add_gridspec(rows + 1, columns, height_ratios=[panel] * rows + [strip_height])
    panels = []
    for k, (name, saliency, deletion, insertion, unstable) in enumerate(maps):
        axis = figure.add_subplot(grid[k // WORDS_PER_ROW, k % WORDS_PER_ROW])
        show(axis, heatmap_overlay(image, saliency), image.height, image.width)
        if explanation.bbox is not None:
            _mark_box([axis], saliency, explanation.bbox)
        lines = [name] if deletion is None else [name, scores(deletion, insertion)]
        axis.set_title(displayable("\n".join(lines + [UNSTABLE] * unstable)), fontsize=8)
        axis.axis("off")
        panels.append(axis)
    draw_strip(figure.add_subplot(grid[rows, :]), explanation.tokens)
    figure.tight_layout()
    _colour_bar(figure, panels)
    question = textwrap.shorten(f"Q: {explanation.question}   A: {explanation.answer}", 25 * columns)
    figure.suptitle(displayable(question), fontsize=9)
    return figure


IMAGES_PER_ROW = 4


def shared_span(images: list[Any]) -> tuple[float, float]:
    """The range of every image's map together: one colour scale, so the image the answer came from stands out.

    >>> from types import SimpleNamespace as Map
    >>> shared_span([Map(saliency=np.array([[0.0, 0.2]])), Map(saliency=np.array([[0.1, 0.8]]))])
    (0.0, 0.8)
    """
    return (min(float(i.saliency.min()) for i in images), max(float(i.saliency.max()) for i in images))


def images_figure(explanation: Any) -> Figure:
    """Every image's map of a question about several images (or a clip's frames) on one colour scale, each titled
    with its share of the mass (up to four a row), the answer strip below."""
    from lvlm_heat.reporting.strip import draw_strip, line_height_in, strip_lines

    images = explanation.images
    span = shared_span(images)
    rows, columns = math.ceil(len(images) / IMAGES_PER_ROW), min(len(images), IMAGES_PER_ROW)
    width = 3.0 * columns
    panel = max(width / columns * i.size[0] / i.size[1] for i in images) + 0.5
    strip_height = 0.35 + strip_lines(explanation.tokens, 0.9 * width) * line_height_in()
    figure = Figure(figsize=(width, 0.8 + rows * panel + strip_height))
    grid = figure.add_gridspec(rows + 1, columns, height_ratios=[panel] * rows + [strip_height])
    panels = []
    for k, part in enumerate(images):
        axis = figure.add_subplot(grid[k // IMAGES_PER_ROW, k % IMAGES_PER_ROW])
        show(axis, heatmap_overlay(part.image, part.saliency, span=span), *part.size)
        kind = "frame" if explanation.video else "image"
        axis.set_title(f"{kind} {k + 1}: {part.share:.0%} of the map", fontsize=8)
        axis.axis("off")
        panels.append(axis)
    draw_strip(figure.add_subplot(grid[rows, :]), explanation.tokens)
    figure.tight_layout()
    _colour_bar(figure, panels, "saliency, one scale for every image\n(1 = removing it costs the answer most)")
    lines = [_title(explanation, 30 * columns)]
    if explanation.deletion is not None:
        lines.append(scores(explanation.deletion, explanation.insertion, explanation.unstable))
    figure.suptitle("\n".join(lines), fontsize=9)
    return figure


def image_overlay_figure(explanation: Any, part: Any) -> Figure:
    """One image (or frame) of several and its part of the map, on the scale every image of the pair shares."""
    figure = Figure(figsize=(4.5, 4.5 * part.size[0] / part.size[1] + 0.6))
    axis = figure.add_subplot()
    show(axis, heatmap_overlay(part.image, part.saliency, span=shared_span(explanation.images)), *part.size)
    kind = "frame" if explanation.video else "image"
    axis.set_title(f"{kind} {part.index + 1} of {len(explanation.images)}: {part.share:.0%} of the map", fontsize=9)
    axis.axis("off")
    _colour_bar(figure, axis, "saliency, one scale for every image")
    figure.tight_layout()
    return figure


def clip_frames(explanation: Any, side: int = 256) -> list[Image.Image]:
    """The clip's frames with their maps on the shared scale, at most ``side`` on the long side: an animation."""
    span = shared_span(explanation.images)
    return [Image.fromarray(heatmap_overlay(part.image, part.saliency, side=side, span=span))
            for part in explanation.images]


def _colour_bar(figure: Figure, axis, label: str = SCALE_LABEL) -> None:
    """The overlay's colour scale beside ``axis`` (or a list of axes), with what it means."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    bar = figure.colorbar(ScalarMappable(Normalize(0, 1), COLORMAP), ax=axis, fraction=0.046, pad=0.03)
    bar.set_label(label, fontsize=7)
    bar.ax.tick_params(labelsize=7)


def _mark_box(axes, saliency: np.ndarray, box) -> None:
    """The evidence box on every panel and the saliency peak (the pointing game's point) on the last."""
    from matplotlib.patches import Rectangle

    left, top, right, bottom = box
    for axis in axes:
        axis.add_patch(Rectangle((left, top), right - left, bottom - top, fill=False, edgecolor="white",
                                 linestyle="--", linewidth=1.5))
    row, column = peak(torch.from_numpy(saliency))
    axes[-1].plot(column, row, marker="+", markersize=14, markeredgewidth=2.5, color="white")


def figure_to_array(figure: Figure, dpi: float = 100) -> np.ndarray:
    """``(H, W, 3)`` uint8: ``figure`` rendered with Agg (no ``pyplot``, unlike TensorBoard's ``add_figure``)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    figure.set_dpi(dpi)
    canvas.draw()
    return np.ascontiguousarray(np.asarray(canvas.buffer_rgba())[..., :3])


def curves_figure(deletion: Curve, insertion: Curve, unstable: bool = False) -> Figure:
    """Normalised deletion and insertion curves with their AUC (marked when the normalisation is unstable)."""
    figure = Figure(figsize=(5, 3.6))
    draw_curves(figure.subplots(), deletion, insertion, unstable)
    figure.tight_layout()
    return figure


def draw_curves(axis, deletion: Curve, insertion: Curve, unstable: bool = False) -> None:
    """The normalised deletion and insertion curves with their AUC on ``axis``."""
    for name, curve, colour in (("deletion", deletion, "tab:red"), ("insertion", insertion, "tab:blue")):
        axis.plot(curve.fractions.numpy(), curve.normalized.numpy(), color=colour, label=f"{name} AUC {curve.auc:.3f}")
    axis.set_xlabel("fraction of mask cells removed / inserted\n(most important first)")
    axis.set_ylabel("normalised probability")
    axis.set_xlim(0, 1)
    axis.legend()
    axis.grid(alpha=0.3)
    if unstable:
        axis.set_title(UNSTABLE, fontsize=9, color="tab:red")
