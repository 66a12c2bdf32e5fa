"""The answer strip: the answer's tokens, each coloured by its log-likelihood ratio, explained ones marked.

A token's LLR is ``log p(a_t | I) - log p(a_t | B)``: red where the image makes the token more likely
than the baseline does, blue where less, white where the image changes nothing. Colours saturate at
``±LLR_SCALE`` nats, the same scale in every pair, so strips compare across a report. Selected (explained)
tokens are boxed and bold. Special tokens (end of sequence, ...) are left out, as the console does.

:func:`strip_tokens` (which tokens, and how they are spaced) and :func:`llr_colour` (their colour) are the
one rule of every rendering. The text renderings come from one template macro (``strip.html.j2``):
:func:`strip_html`, inline styles only, for the report and notebooks, and :func:`strip_markdown` for
TensorBoard's text. :func:`draw_strip` (on an axis) and :func:`strip_figure` (on its own) draw the same
strip with matplotlib, for PNG figures (no ``pyplot``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.transforms import ScaledTranslation

from lvlm_heat.reporting.templates import macro

LLR_SCALE = 4.0
"""Nats at which the colour saturates (``e^4``: the image makes the token about 55 times more likely)."""
COLORMAP = "RdBu_r"
MONO_ADVANCE = 0.6
"""Width of one monospace character in ems (DejaVu Sans Mono: 0.602), for laying tokens out without a renderer."""
STRIP_TEMPLATE = "strip.html.j2"
CAPTION = "answer tokens coloured by LLR = log p(token | image) - log p(token | baseline); boxed and bold = explained"


@dataclass(frozen=True)
class StripToken:
    """One non-special answer token as the strip shows it."""

    text: str
    llr: float | None
    selected: bool
    space_before: bool


def strip_tokens(tokens: Iterable[Any]) -> list[StripToken]:
    """The non-special tokens of ``result.json``'s ``tokens`` records or of
    :class:`~lvlm_heat.record.TokenScore`\\ s."""
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


@functools.cache
def _colormap() -> matplotlib.colors.Colormap:
    """The colormap, looked up once (each lookup copies it, and a copy builds its table on first use)."""
    return matplotlib.colormaps[COLORMAP]


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
    return tuple(float(c) for c in _colormap()(position)[:3])


def dark_background(llr: float | None) -> bool:
    """Whether the token's colour is dark enough to need white text."""
    return llr is not None and abs(llr) > 0.6 * LLR_SCALE


def hex_colour(colour: tuple[float, float, float]) -> str:
    """``#rrggbb`` of an RGB colour in ``[0, 1]``."""
    return "#" + "".join(f"{round(255 * c):02x}" for c in colour)


def strip_view(tokens: Iterable[Any]) -> list[dict[str, Any]]:
    """What the strip template needs of each shown token: :class:`StripToken`'s fields, its colour and
    whether it needs white text.

    >>> strip_view([{"text": " red", "llr": 5.0, "selected": True}])
    [{'text': 'red', 'llr': 5.0, 'selected': True, 'space_before': True, 'background': '#67001f', 'dark': True}]
    """
    return [{"text": t.text, "llr": t.llr, "selected": t.selected, "space_before": t.space_before,
             "background": hex_colour(llr_colour(t.llr)), "dark": dark_background(t.llr)} for t in strip_tokens(tokens)]


def _render_strip(tokens: Iterable[Any], flavour: str) -> str:
    return str(macro("strip", STRIP_TEMPLATE)(strip_view(tokens), flavour))


def strip_html(tokens: Iterable[Any]) -> str:
    """The strip as one HTML ``<span>`` with inline styles (a notebook or any page shows it as is).

    Each token's ``title`` gives its LLR and whether it was explained; explained tokens are bold and boxed.
    The report's cards and the notebook display carry exactly this string.
    """
    return _render_strip(tokens, "html")


def strip_markdown(tokens: Iterable[Any]) -> str:
    r"""The strip as markdown text (TensorBoard's ``answer/tokens``): each token with an LLR followed by it,
    explained ones in bold, then a caption line (after a markdown line break). Not HTML-escaped.

    >>> strip_markdown([{"text": "the", "llr": 0.1}, {"text": " red", "llr": 6.0, "selected": True}])
    'the +0.10 **red +6.00**  \n(LLR per token; **bold** = explained)'
    """
    return _render_strip(tokens, "markdown")


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


def displayable(text: str, family: str = "DejaVu Sans") -> str:
    """``text`` with every character the font cannot draw replaced by ``?`` (no warning per missing glyph).

    >>> displayable("red \U0001f914 circle")
    'red ? circle'
    """
    glyphs = _glyphs(family)
    return "".join(c if ord(c) in glyphs or c in "\n\t" else "?" for c in text)


@functools.cache
def _glyphs(family: str) -> frozenset[int]:
    from matplotlib import font_manager, ft2font

    return frozenset(ft2font.FT2Font(font_manager.findfont(family)).get_charmap())


def draw_strip(axis: Axes, tokens: Iterable[Any], fontsize: float = 10, caption: bool = True) -> None:
    """Draw the strip from the top-left corner of ``axis`` (its frame and ticks are turned off)."""
    axis.axis("off")
    figure = axis.get_figure()
    width_pt = axis.get_position().width * figure.get_figwidth() * 72
    shown = strip_tokens(tokens)
    line_pt = 72 * line_height_in(fontsize)
    for line, x, token in _layout(shown, width_pt, fontsize):
        offset = ScaledTranslation(x / 72, -(line * line_pt + 0.3 * fontsize) / 72, figure.dpi_scale_trans)
        axis.text(0, 1, displayable(token.text, "monospace"), transform=axis.transAxes + offset, ha="left", va="top",
                  family="monospace",
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
