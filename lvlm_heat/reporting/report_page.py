"""The page of ``report.html``: the geometry of the SVG charts at its top, and the page rendered from its template.

The markup lives in the package's templates (``report.html.j2`` with ``report.css`` and ``report.js``
inlined, the charts' macros in ``charts.svg.j2``); this module computes what they draw: the bins and
stacking of the histograms, the shares of the bars, every coordinate. Nothing is fetched from anywhere:
the page's script renders the pair cards from the JSON blob the page carries, a page of cards at a time.
"""

from __future__ import annotations

import math
from typing import Any

from markupsafe import Markup

from lvlm_heat.reporting.templates import render

COLOURS = {"pairs": "#4c72b0", "correct": "#2e8b57", "wrong": "#d1495b", "no reference": "#9a9a9a", "all": "#4c72b0"}
PAGE_TEMPLATE = "report.html.j2"


def _colour(name: str) -> str:
    return COLOURS.get(name, "#4c72b0")


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered, middle = sorted(values), len(values) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def histogram(title: str, groups: dict[str, list[float]], bins: int = 20, width: int = 330,
              height: int = 190) -> dict[str, Any]:
    """The geometry of a histogram over ``[0, 1]`` of one or several groups of values, stacked.

    Values outside ``[0, 1]`` (a normalised curve can leave it) are counted in the edge bins and said so.

    Returns:
        What the ``histogram`` macro of ``charts.svg.j2`` draws: the frame (``left``, ``right``, ``top``,
        ``base``), one ``bars`` entry per non-empty stacked segment (position, size, colour, tooltip), the
        ``ticks``, the ``peak`` count, the ``median`` line (``None`` without values), a ``note`` and the
        ``legend`` (with several groups).

    >>> chart = histogram("AUC", {"pairs": [0.1, 0.12, 0.9]})
    >>> [bar["label"] for bar in chart["bars"]], chart["peak"], chart["median"]["value"]
    (['pairs: 2 in [0.10, 0.15)', 'pairs: 1 in [0.90, 0.95)'], 2, 0.12)
    """
    shown = [(name, values) for name, values in groups.items() if values]
    left, right, top, bottom = 34, 10, 38 if len(shown) > 1 else 24, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    counts = {name: [0] * bins for name in groups}
    outside = 0
    for name, values in groups.items():
        for value in values:
            outside += not 0 <= value <= 1
            counts[name][min(bins - 1, max(0, math.floor(value * bins)))] += 1
    peak = max((sum(counts[name][k] for name in groups) for k in range(bins)), default=0) or 1
    bar_w, base = plot_w / bins, top + plot_h
    bars = []
    for k in range(bins):
        y = base
        for name in groups:
            count = counts[name][k]
            if count:
                h = plot_h * count / peak
                y -= h
                bars.append({"x": round(left + k * bar_w + 0.5, 1), "y": round(y, 1), "width": round(bar_w - 1, 1),
                             "height": round(h, 1), "fill": _colour(name),
                             "label": f"{name}: {count} in [{k / bins:.2f}, {(k + 1) / bins:.2f})"})
    everything = [v for values in groups.values() for v in values]
    median = _median(everything)
    legend, x = [], left
    for name, values in shown if len(shown) > 1 else []:
        label = f"\u25a0 {name} ({len(values)})"
        legend.append({"x": x, "fill": _colour(name), "label": label})
        x += 6.5 * len(label) + 12
    return {
        "kind": "histogram", "title": title, "width": width, "height": height,
        "left": left, "right": left + plot_w, "top": top, "base": base, "peak": peak, "bars": bars,
        "ticks": [{"x": round(left + tick * plot_w, 1), "label": f"{tick:g}"} for tick in (0, 0.25, 0.5, 0.75, 1)],
        "median": None if median is None else {"x": round(left + min(1.0, max(0.0, median)) * plot_w, 1),
                                               "value": median},
        "note": f"median dashed; {len(everything)} pairs"
                + (f"; {outside} outside [0, 1], in the end bins" if outside else ""),
        "legend": legend,
    }


def share_bars(title: str, bars: dict[str, list[bool]], width: int = 330) -> dict[str, Any]:
    """The geometry of one horizontal bar per group: the share of ``True`` (hits) among its values.

    >>> chart = share_bars("pointing", {"all": [True, False, True, True], "none": []})
    >>> [(bar["hits"], bar["total"], bar["share"], bar["width"]) for bar in chart["bars"]]
    [(3, 4, 0.75, 118.5), (0, 0, 0.0, 0.0)]
    """
    row, left, top = 26, 80, 24
    plot_w = width - left - 92
    shown = []
    for k, (name, values) in enumerate(bars.items()):
        hits, total = sum(bool(v) for v in values), len(values)
        share = hits / total if total else 0.0
        shown.append({"name": name, "y": top + k * row, "hits": hits, "total": total, "share": share,
                      "width": round(plot_w * share, 1), "fill": _colour(name)})
    return {"kind": "share_bars", "title": title, "width": width, "height": top + row * len(bars) + 12,
            "left": left, "plot_width": plot_w, "bars": shown}


def render_page(*, name: str, model: str, written: str, settings: str, overview: dict[str, Any],
                charts: list[dict[str, Any]], data: str) -> str:
    """The whole page.

    Args:
        name: The run folder's name (the page's title).
        model: The model's name.
        written: When the page was written.
        settings: ``run.json``'s identity as indented JSON (shown as is).
        overview: What the overview tables show (see :func:`lvlm_heat.reporting.report.overview_tables`).
        charts: The charts' geometry (:func:`histogram`, :func:`share_bars`); none are drawn when empty.
        data: The pairs' JSON blob, ``<`` escaped (it goes into a ``<script>`` element as it is).

    Everything but ``data`` is text: the template escapes it.
    """
    return render(PAGE_TEMPLATE, name=name, model=model, written=written, settings=settings, overview=overview,
                  charts=charts, data=Markup(data))
