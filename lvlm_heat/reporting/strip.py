"""The answer strip: the answer's tokens, each coloured by its log-likelihood ratio, explained ones marked.

A token's LLR is ``log p(a_t | I) - log p(a_t | B)``: red where the image makes the token more likely
than the baseline does, blue where less, white where the image changes nothing. Colours saturate at
``±LLR_SCALE`` nats, the same scale in every pair, so strips compare across a report. Selected (explained)
tokens are boxed and bold. Special tokens (end of sequence, ...) are left out, as the console does.

The same strip comes as HTML (:func:`strip_html`, inline styles only, for the report and notebooks) and
drawn with matplotlib (:func:`draw_strip` on an axis, :func:`strip_figure` on its own; no ``pyplot``).
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.transforms import ScaledTranslation

LLR_SCALE = 4.0
"""Nats at which the colour saturates (``e^4``: the image makes the token about 55 times more likely)."""
COLORMAP = "RdBu_r"
MONO_ADVANCE = 0.6
"""Width of one monospace character in ems (DejaVu Sans Mono: 0.602), for laying tokens out without a renderer."""
CAPTION = "answer tokens coloured by LLR = log p(token | image) - log p(token | baseline); boxed and bold = explained"


@dataclass(frozen=True)
class StripToken:
    """One non-special answer token as the strip shows it."""

    text: str
    llr: float | None
    selected: bool
    space_before: bool


def strip_tokens(tokens: Iterable[Any]) -> list[StripToken]:
    """The non-special tokens of ``result.json``'s ``tokens`` records or of :class:`~lvlm_heat.record.TokenScore`\\ s."""
    shown = []
    for token in tokens:
        field = token.get if isinstance(token, dict) else lambda name, t=token: getattr(t, name, None)
        if field("special"):
            continue
        text = str(field("text") or "")
        if not text.strip():
            continue
        llr = field("llr")
        shown.append(StripToken(text.strip(), None if llr is None else float(llr), bool(field("selected")),
                                text[:1].isspace() or text.startswith("\u2581")))
    return shown


def llr_colour(llr: float | None) -> tuple[float, float, float]:
    """RGB in ``[0, 1]`` for an LLR: the diverging colormap at ``llr / LLR_SCALE``, clipped (grey for ``None``).

    >>> [hex_colour(llr_colour(llr)) for llr in (-4.0, 0.0, 4.0)]  # dark blue, near white, dark red
    ['#053061', '#f7f6f6', '#67001f']
    >>> llr_colour(40.0) == llr_colour(LLR_SCALE)
    True
    """
    if llr is None or math.isnan(llr):
        return (0.85, 0.85, 0.85)
    position = 0.5 + 0.5 * max(-1.0, min(1.0, llr / LLR_SCALE))
    return tuple(float(c) for c in matplotlib.colormaps[COLORMAP](position)[:3])


def dark_background(llr: float | None) -> bool:
    """Whether the token's colour is dark enough to need white text."""
    return llr is not None and abs(llr) > 0.6 * LLR_SCALE


def hex_colour(colour: tuple[float, float, float]) -> str:
    """``#rrggbb`` of an RGB colour in ``[0, 1]``."""
    return "#" + "".join(f"{round(255 * c):02x}" for c in colour)


def strip_html(tokens: Iterable[Any]) -> str:
    """The strip as one HTML ``<span>`` with inline styles (a notebook or any page shows it as is).

    Each token's ``title`` gives its LLR and whether it was explained; explained tokens are bold and boxed.
    """
    parts = []
    for k, token in enumerate(strip_tokens(tokens)):
        llr = "n/a" if token.llr is None else f"{token.llr:+.2f}"
        text_colour = "#fff" if dark_background(token.llr) else "#111"
        style = (f"background:{hex_colour(llr_colour(token.llr))};color:{text_colour};padding:1px 3px;"
                 "border-radius:3px;")
        if token.selected:
            style += "font-weight:700;outline:2px solid #111;outline-offset:-1px;"
        title = f"LLR {llr}" + (", explained" if token.selected else "")
        gap = " " if token.space_before and k else ""
        parts.append(f'{gap}<span class="tok{" sel" if token.selected else ""}" style="{style}" '
                     f'title="{html.escape(title)}">{html.escape(token.text)}</span>')
    body = "".join(parts) or '<span style="color:#777">(no answer tokens)</span>'
    return f'<span class="strip" style="font-family:monospace;line-height:1.9">{body}</span>'


def _layout(tokens: list[StripToken], width_pt: float, fontsize: float) -> list[tuple[int, float, StripToken]]:
    """``(line, x in points, token)`` of each token, wrapped at ``width_pt``."""
    advance, gap = MONO_ADVANCE * fontsize, 0.6 * fontsize
    placed, line, x = [], 0, 0.0
    for token in tokens:
        width = advance * len(token.text) + 0.6 * fontsize  # text and its box's padding
        start = x + (gap if token.space_before and x > 0 else 0.0)
        if start + width > width_pt and x > 0:
            line, start = line + 1, 0.0
        placed.append((line, start, token))
        x = start + width
    return placed


def strip_lines(tokens: Iterable[Any], width_in: float, fontsize: float = 10) -> int:
    """How many lines the strip takes in an axis ``width_in`` inches wide (at least 1)."""
    placed = _layout(strip_tokens(tokens), 72 * width_in, fontsize)
    return 1 + max((line for line, _, _ in placed), default=0)


def line_height_in(fontsize: float = 10) -> float:
    """Height of one strip line in inches."""
    return 2.0 * fontsize / 72


def draw_strip(axis: Axes, tokens: Iterable[Any], fontsize: float = 10, caption: bool = True) -> None:
    """Draw the strip from the top-left corner of ``axis`` (its frame and ticks are turned off)."""
    axis.axis("off")
    figure = axis.get_figure()
    width_pt = axis.get_position().width * figure.get_figwidth() * 72
    shown = strip_tokens(tokens)
    line_pt = 72 * line_height_in(fontsize)
    for line, x, token in _layout(shown, width_pt, fontsize):
        offset = ScaledTranslation(x / 72, -(line * line_pt + 0.3 * fontsize) / 72, figure.dpi_scale_trans)
        axis.text(0, 1, token.text, transform=axis.transAxes + offset, ha="left", va="top", family="monospace",
                  fontsize=fontsize, fontweight="bold" if token.selected else "normal",
                  color="white" if dark_background(token.llr) else "black",
                  bbox={"boxstyle": "square,pad=0.25", "facecolor": llr_colour(token.llr),
                        "edgecolor": "black" if token.selected else "none", "linewidth": 1.5})
    if not shown:
        axis.text(0, 1, "(no answer tokens)", transform=axis.transAxes, ha="left", va="top", color="grey")
    if caption:
        axis.set_title(CAPTION, fontsize=7, color="dimgrey", loc="left")


def strip_figure(tokens: Iterable[Any], width_in: float = 8.0, fontsize: float = 10) -> Figure:
    """The strip on its own (for TensorBoard), as tall as its lines need."""
    tokens = list(tokens)
    lines = strip_lines(tokens, 0.96 * width_in, fontsize)
    figure = Figure(figsize=(width_in, 0.35 + lines * line_height_in(fontsize)))
    axis = figure.add_axes((0.02, 0.0, 0.96, 1 - 0.3 / figure.get_figheight()))
    draw_strip(axis, tokens, fontsize)
    return figure
