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

from lvlm_heat.metrics.curves import Curve
from lvlm_heat.metrics.functional import peak


def heatmap_overlay(image: Image.Image, saliency: np.ndarray, alpha: float = 0.5, colormap: str = "jet") -> np.ndarray:
    """``(H, W, 3)`` uint8: ``saliency`` (``(H, W)``, any range) in colour over ``image``."""
    span = float(saliency.max() - saliency.min())
    scaled = (saliency - saliency.min()) / span if span > 0 else np.zeros_like(saliency)
    colours = matplotlib.colormaps[colormap](scaled)[..., :3]
    base = np.asarray(image.convert("RGB"), dtype=np.float32) / 255
    return ((1 - alpha) * base + alpha * colours).clip(0, 1).__mul__(255).round().astype(np.uint8)


def _title(explanation: Any, width: int = 70) -> str:
    selected = ", ".join(explanation.selected_tokens) or "none"
    lines = [f"Q: {explanation.question}", f"A: {explanation.answer}", f"explained tokens: {selected}"]
    return "\n".join(textwrap.shorten(line, width) for line in lines)


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
    axes[0].imshow(image.convert("RGB"))
    axes[0].set_title("image")
    axes[1].imshow(heatmap_overlay(image, explanation.saliency))
    axes[1].set_title("saliency (red = important)")
    if explanation.bbox is not None:
        _mark_box(axes, explanation.saliency, explanation.bbox, explanation.pointing_hit)
    for axis in axes:
        axis.axis("off")
    if curves:
        draw_curves(figure.add_subplot(top[0, 2]), explanation.deletion, explanation.insertion)
    if word_maps:
        grid = outer[1].subgridspec(word_rows, min(len(word_maps), WORDS_PER_ROW))
        for k, word in enumerate(word_maps):
            axis = figure.add_subplot(grid[k // WORDS_PER_ROW, k % WORDS_PER_ROW])
            axis.imshow(heatmap_overlay(image, word.saliency))
            if explanation.bbox is not None:
                _mark_box([axis], word.saliency, explanation.bbox, None, title=False)
            axis.set_title(f"{word.word!r}: deletion {word.deletion.auc:.2f}, insertion {word.insertion.auc:.2f}",
                           fontsize=8)
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
                    insertion=word.insertion)
    figure = overlay_figure(image, alone)
    figure.axes[1].set_title(f"map of {word.word!r}: deletion AUC {word.deletion.auc:.3f}, insertion AUC "
                             f"{word.insertion.auc:.3f}", fontsize=9)
    return figure


def words_figure(image: Image.Image, explanation: Any) -> Figure:
    """Every per-word map side by side after the joint map (up to five a row), the answer strip below."""
    from lvlm_heat.reporting.strip import draw_strip, line_height_in, strip_lines

    maps = [("joint map", explanation.saliency, explanation.deletion, explanation.insertion)]
    maps += [(repr(w.word) + (" (unstable: p(I) ~ p(B))" if w.unstable else ""), w.saliency, w.deletion, w.insertion)
             for w in explanation.words or []]
    rows, columns = math.ceil(len(maps) / WORDS_PER_ROW), min(len(maps), WORDS_PER_ROW)
    width = 2.6 * columns
    panel = width / columns * image.height / image.width + 0.4
    strip_height = 0.35 + strip_lines(explanation.tokens, 0.9 * width) * line_height_in()
    figure = Figure(figsize=(width, 0.5 + rows * panel + strip_height))
    grid = figure.add_gridspec(rows + 1, columns, height_ratios=[panel] * rows + [strip_height])
    for k, (name, saliency, deletion, insertion) in enumerate(maps):
        axis = figure.add_subplot(grid[k // WORDS_PER_ROW, k % WORDS_PER_ROW])
        axis.imshow(heatmap_overlay(image, saliency))
        if explanation.bbox is not None:
            _mark_box([axis], saliency, explanation.bbox, None, title=False)
        scores = "" if deletion is None else f"\ndeletion {deletion.auc:.2f}, insertion {insertion.auc:.2f}"
        axis.set_title(f"{name}{scores}", fontsize=8)
        axis.axis("off")
    draw_strip(figure.add_subplot(grid[rows, :]), explanation.tokens)
    figure.suptitle(textwrap.shorten(f"Q: {explanation.question}   A: {explanation.answer}", 25 * columns), fontsize=9)
    figure.tight_layout()
    return figure


def _mark_box(axes, saliency: np.ndarray, box, hit: bool | None, title: bool = True) -> None:
    """The evidence box on every panel and the saliency peak (the pointing game's point) on the last."""
    from matplotlib.patches import Rectangle

    left, top, right, bottom = box
    for axis in axes:
        axis.add_patch(Rectangle((left, top), right - left, bottom - top, fill=False, edgecolor="white",
                                 linestyle="--", linewidth=1.5))
    row, column = peak(torch.from_numpy(saliency))
    axes[-1].plot(column, row, marker="+", markersize=14, markeredgewidth=2.5, color="white")
    if title:
        axes[-1].set_title(f"saliency (peak {'in' if hit else 'outside'} the box)")


def figure_to_array(figure: Figure, dpi: float = 100) -> np.ndarray:
    """``(H, W, 3)`` uint8: ``figure`` rendered with Agg (no ``pyplot``, unlike TensorBoard's ``add_figure``)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    figure.set_dpi(dpi)
    canvas.draw()
    return np.ascontiguousarray(np.asarray(canvas.buffer_rgba())[..., :3])


def curves_figure(deletion: Curve, insertion: Curve) -> Figure:
    """Normalised deletion and insertion curves with their AUC."""
    figure = Figure(figsize=(5, 3.6))
    draw_curves(figure.subplots(), deletion, insertion)
    figure.tight_layout()
    return figure


def draw_curves(axis, deletion: Curve, insertion: Curve) -> None:
    """The normalised deletion and insertion curves with their AUC on ``axis``."""
    for name, curve, colour in (("deletion", deletion, "tab:red"), ("insertion", insertion, "tab:blue")):
        axis.plot(curve.fractions.numpy(), curve.normalized.numpy(), color=colour, label=f"{name} AUC {curve.auc:.3f}")
    axis.set_xlabel("fraction of mask cells removed / inserted\n(most important first)")
    axis.set_ylabel("normalised probability")
    axis.set_xlim(0, 1)
    axis.legend()
    axis.grid(alpha=0.3)
